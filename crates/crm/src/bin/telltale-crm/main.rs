//! `telltale-crm`: the CRM server and the advisor's terminal tool.
//!
//! `serve` and `migrate` and `token create` work on the database directly (an operator's
//! commands); `import`, `leads` and `quote` are gRPC clients with a bearer token (a person's
//! commands), so they work from any machine that reaches the API.

mod client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use telltale_crm::app::Crm;
use telltale_crm::auth::{self, Role};
use telltale_crm::data::Data;
use telltale_crm::db::{Db, TokenRecord};
use telltale_crm::link::LinkKey;
use tokio_util::sync::CancellationToken;

/// Diagnostic leads with repair pre-quotes: the gRPC API for advisors and the ingest, the
/// owner's quote page, and the commands to run and use them.
#[derive(Debug, Parser)]
#[command(name = "telltale-crm", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct DbArgs {
    /// `postgres://user@host/db` (tables in the `crm` schema) or `sqlite:FILE`.
    #[arg(
        long,
        env = "TELLTALE_CRM_DATABASE_URL",
        default_value = "sqlite:telltale-crm.db"
    )]
    database_url: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC API and the owner's quote page (applies migrations first).
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate(DbArgs),
    /// Make a bearer token (printed once; only its hash is kept).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Replace the tenant's parts catalog or labor guide with a CSV file (manager token).
    Import {
        kind: ImportKind,
        file: PathBuf,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Leads: list them, or watch them change live.
    Leads {
        #[command(subcommand)]
        command: client::LeadsCommand,
    },
    /// Shops: their rates, hours and bays.
    Shop {
        #[command(subcommand)]
        command: client::ShopCommand,
    },
    /// Quotes.
    Quote {
        #[command(subcommand)]
        command: client::QuoteCommand,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ImportKind {
    Parts,
    Labor,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token for a tenant (the tenant is created when new).
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        tenant: String,
        /// advisor, manager or integration.
        #[arg(long)]
        role: String,
        /// The advisor's id or the service's name; the audit trail shows it.
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        label: String,
        /// Stops working after this long (e.g. 90d); never, when not given.
        #[arg(long, value_parser = telltale_service::config::parse_duration)]
        expires: Option<std::time::Duration>,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Pool size (PostgreSQL; SQLite uses one connection).
    #[arg(long, env = "TELLTALE_CRM_DATABASE_CONNECTIONS", default_value_t = 10)]
    database_connections: u32,
    /// How long a checked token is trusted before the database is asked again (a token revoked
    /// in the database stops working within this); 0s asks on every call.
    #[arg(
        long,
        env = "TELLTALE_CRM_TOKEN_CACHE",
        default_value = "5s",
        value_parser = telltale_service::config::parse_duration
    )]
    token_cache: std::time::Duration,
    /// Where the gRPC API listens.
    #[arg(
        long,
        env = "TELLTALE_CRM_GRPC_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    grpc_listen: SocketAddr,
    /// PEM certificate (chain) for the gRPC API: with it (and --tls-key-file) the API speaks
    /// only TLS. Without, put it behind a TLS-terminating proxy or keep it on a private network.
    #[arg(long, env = "TELLTALE_CRM_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, env = "TELLTALE_CRM_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Where Prometheus reads `/metrics` (keep it off the public network); empty disables.
    #[arg(
        long,
        env = "TELLTALE_CRM_METRICS_LISTEN",
        default_value = "127.0.0.1:9467"
    )]
    metrics_listen: String,
    /// Where the owner's quote page listens.
    #[arg(
        long,
        env = "TELLTALE_CRM_HTTP_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    http_listen: SocketAddr,
    /// The address owners reach the quote page at, for the links (default: http://HTTP_LISTEN).
    #[arg(long, env = "TELLTALE_CRM_PUBLIC_URL")]
    public_url: Option<String>,
    /// File holding the secret owner links are signed with (at least 32 bytes; e.g. `openssl
    /// rand -hex 32`). Keep it across restarts: a new key invalidates every link sent.
    #[arg(long, env = "TELLTALE_CRM_LINK_KEY_FILE")]
    link_key_file: PathBuf,
    /// A directory laid out like the repository's `data/` to use instead of the built-in data.
    #[arg(long, env = "TELLTALE_CRM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, env = "TELLTALE_CRM_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// A tracing filter (`info`, `telltale_crm=debug`); RUST_LOG wins when set.
    #[arg(long, env = "TELLTALE_CRM_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telltale-crm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telltale-crm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(db: &DbArgs, connections: u32) -> anyhow::Result<Db> {
    let redacted = telltale_service::config::redact_url(&db.database_url);
    let conn = Db::connect(&db.database_url, connections)
        .await
        .with_context(|| format!("database {redacted}"))?;
    conn.migrate()
        .await
        .with_context(|| format!("migrating {redacted}"))?;
    Ok(conn)
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(db) => {
            open(&db, 1).await?;
            println!(
                "migrated {}",
                telltale_service::config::redact_url(&db.database_url)
            );
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    db,
                    tenant,
                    role,
                    subject,
                    label,
                    expires,
                },
        } => {
            let role = Role::parse(&role)
                .with_context(|| format!("role {role:?}: use advisor, manager or integration"))?;
            let db = open(&db, 1).await?;
            let now = telltale_crm::app::system_clock();
            if !db.tenant_exists(&tenant).await? {
                db.put_tenant(&tenant, &tenant, now).await?;
                eprintln!("created tenant {tenant}");
            }
            let token = auth::new_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let record = TokenRecord {
                id: auth::new_id("tk_").map_err(|e| anyhow::anyhow!("no randomness: {e}"))?,
                tenant,
                role,
                subject,
                label,
                created_ms: now,
                expires_ms: expires.map(|d| now + d.as_millis() as i64),
                revoked_ms: None,
            };
            db.add_token(&record, &token.hash).await?;
            eprintln!(
                "token {} ({} {} of tenant {}); keep it secret, it is shown once:",
                record.id, record.role, record.subject, record.tenant
            );
            println!("{}", token.secret);
            Ok(())
        }
        Command::Import { kind, file, api } => {
            let kind = match kind {
                ImportKind::Parts => telltale_crm::db::CatalogKind::Parts,
                ImportKind::Labor => telltale_crm::db::CatalogKind::Labor,
            };
            client::import(&api, kind, &file).await
        }
        Command::Leads { command } => client::leads(command).await,
        Command::Quote { command } => client::quote(command).await,
        Command::Shop { command } => client::shop(command).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let json = telltale_service::config::json_logs("log_format", &args.log_format)?;
    telltale_service::process::init_logs(json, &args.log);
    let key = std::fs::read(&args.link_key_file)
        .with_context(|| format!("link key file {}", args.link_key_file.display()))?;
    let key = LinkKey::new(trim_newline(&key))
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.link_key_file.display()))?;
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("TLS file {}", p.display()));
            Some(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ))
        }
        _ => None,
    };
    let data =
        Data::load(args.data_dir.as_deref()).map_err(|e| anyhow::anyhow!("reference data: {e}"))?;
    let db = open(&args.db, args.database_connections).await?;
    let grpc = tokio::net::TcpListener::bind(args.grpc_listen)
        .await
        .with_context(|| format!("gRPC listen {}", args.grpc_listen))?;
    let http = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("HTTP listen {}", args.http_listen))?;
    let public_url = args.public_url.unwrap_or_else(|| {
        format!(
            "http://{}",
            http.local_addr().map(|a| a.to_string()).unwrap_or_default()
        )
    });
    tracing::info!(
        grpc = %grpc.local_addr()?,
        http = %http.local_addr()?,
        public_url = %public_url,
        grpc_tls = args.tls_cert_file.is_some(),
        database = %telltale_service::config::redact_url(&args.db.database_url),
        codes = data.knowledge.len(),
        "telltale-crm serving"
    );
    let crm =
        Arc::new(Crm::new(db, Arc::new(data), key, &public_url).with_token_cache(args.token_cache));
    let shutdown = CancellationToken::new();
    if !args.metrics_listen.is_empty() {
        let addr: SocketAddr = args
            .metrics_listen
            .parse()
            .with_context(|| format!("--metrics-listen {:?}", args.metrics_listen))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics listen {addr}"))?;
        tracing::info!(%addr, "metrics on /metrics");
        let crm = crm.clone();
        tokio::spawn(telltale_service::http::serve(
            listener,
            shutdown.clone(),
            &["/metrics"],
            move |path| {
                (path == "/metrics")
                    .then(|| telltale_service::http::Reply::prometheus(crm.metrics.render()))
            },
        ));
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        telltale_service::process::shutdown_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    telltale_crm::server::run(crm, grpc, tls, http, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

fn trim_newline(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}
