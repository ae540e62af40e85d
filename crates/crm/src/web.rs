//! The owner's quote page: server-rendered HTML over axum that works without JavaScript and
//! reads well on a phone. An owner opens the signed link, reads the problem in plain words and
//! how urgent it is, picks an option and accepts (or declines), then picks an appointment
//! slot. Every form posts back to the same link and is answered with a redirect to it
//! (post/redirect/get), so a reload never repeats an action. An expired, replaced or damaged
//! link gets a page that says so and what to do, never an error dump.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::DateTime;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, Crm, LinkProblem, OwnerView};
use crate::db::{DbError, QuoteState};
use crate::link::LinkError;
use crate::money::show as money;

const OWNER: &str = "owner";

/// The quote page's routes.
pub fn router(crm: Arc<Crm>) -> Router {
    Router::new()
        .route("/q/{token}", get(show))
        .route("/q/{token}/accept", post(accept))
        .route("/q/{token}/decline", post(decline))
        .route("/q/{token}/book", post(book))
        .route("/healthz", get(health))
        .with_state(crm)
}

/// Serves the quote page on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    crm: Arc<Crm>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(crm))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn health(State(crm): State<Arc<Crm>>) -> Response {
    if crm.db().ping().await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
    }
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        title = esc(title)
    );
    let mut response = (status, Html(html)).into_response();
    // The link is the key to the quote: keep it out of caches and referrers.
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f1;color:#1d1d1b;line-height:1.45}\
main{max-width:34rem;margin:0 auto;padding:1rem}h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}\
.card{background:#fff;border-radius:.6rem;padding:1rem;margin:.7rem 0;box-shadow:0 1px 2px #0002}\
.urgent{border-left:.4rem solid #c62828}.soon{border-left:.4rem solid #ef6c00}.wait{border-left:.4rem solid #2e7d32}\
label.option{display:block;background:#fff;border:2px solid #ddd;border-radius:.6rem;padding:.8rem;margin:.6rem 0}\
label.option:has(input:checked){border-color:#1565c0}.price{font-size:1.3rem;font-weight:700;float:right}\
.muted{color:#5f5f5a;font-size:.9rem}table{width:100%;border-collapse:collapse;font-size:.9rem}td{padding:.15rem 0}td.n{text-align:right;white-space:nowrap}\
button{font-size:1.05rem;padding:.8rem 1.2rem;border:0;border-radius:.5rem;background:#1565c0;color:#fff;width:100%;margin:.4rem 0}\
button.secondary{background:#e0e0dc;color:#1d1d1b}input[type=text]{width:100%;padding:.6rem;font-size:1rem;box-sizing:border-box}\
.slot{display:inline-block;margin:.25rem}.done{border-left:.4rem solid #1565c0}";

/// A time in the shop's local time: "Mon 23 Nov, 08:00".
fn local(ms: i64, offset_minutes: i32) -> String {
    DateTime::from_timestamp_millis(ms + i64::from(offset_minutes) * 60_000)
        .map(|t| t.format("%a %-d %b, %H:%M").to_string())
        .unwrap_or_default()
}

fn problem_page(problem: LinkProblem, shop_contact: Option<String>) -> Response {
    let call = shop_contact
        .map(|c| format!("<p>Call {c} and ask for a new link.</p>"))
        .unwrap_or_default();
    match problem {
        LinkProblem::Link(LinkError::Expired { .. }) => page(
            StatusCode::GONE,
            "This quote link has expired",
            &format!(
                "<h1>This quote link has expired</h1><div class=\"card\"><p>Quote links work for a limited time so that prices stay current.</p>{call}</div>"
            ),
        ),
        LinkProblem::Replaced => page(
            StatusCode::GONE,
            "A newer quote was sent",
            &format!(
                "<h1>A newer quote was sent</h1><div class=\"card\"><p>The shop updated this quote and sent you a new link; please use the newest message.</p>{call}</div>"
            ),
        ),
        LinkProblem::Link(LinkError::Tampered)
        | LinkProblem::App(AppError::Db(DbError::NotFound(_))) => page(
            StatusCode::NOT_FOUND,
            "This link does not work",
            "<h1>This link does not work</h1><div class=\"card\"><p>The link is incomplete or was changed. \
             Open it again from the message the shop sent you, making sure it is copied whole.</p></div>",
        ),
        LinkProblem::App(e) => {
            crate::metrics::bump(&crate::metrics::DATABASE_ERRORS);
            tracing::error!(cause = %e, "quote page");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<h1>Please try again in a minute</h1><div class=\"card\"><p>We could not load your quote just now.</p></div>",
            )
        }
    }
}

async fn open(crm: &Crm, token: &str) -> Result<OwnerView, Response> {
    match crm.open_link(token).await {
        Ok(view) => Ok(view),
        Err(problem) => {
            // For an expired or replaced link the quote is known: give the shop's number.
            let contact = match &problem {
                LinkProblem::Link(LinkError::Expired { quote_id }) => {
                    crm.shop_contact(quote_id).await
                }
                LinkProblem::Replaced => match crm.link_quote_id(token) {
                    Some(id) => crm.shop_contact(&id).await,
                    None => None,
                },
                _ => None,
            };
            Err(problem_page(problem, contact.map(|c| esc(&c))))
        }
    }
}

async fn show(State(crm): State<Arc<Crm>>, Path(token): Path<String>) -> Response {
    match open(&crm, &token).await {
        Ok(view) => render(&crm, &token, &view).await,
        Err(page) => page,
    }
}

async fn render(crm: &Crm, token: &str, view: &OwnerView) -> Response {
    let q = &view.quote;
    let b = &q.body;
    let shop = &view.shop;
    let mut h = String::new();
    let _ = write!(
        h,
        "<p class=\"muted\">{} · vehicle {}</p>",
        esc(&shop.name),
        esc(&q.vin)
    );
    use crate::knowledge::Severity;
    let (class, urgency) = match b.severity {
        Some(s @ Severity::StopNow) => ("urgent", s.words()),
        Some(s @ Severity::ServiceSoon) => ("soon", s.words()),
        Some(s @ Severity::CanWait) => ("wait", s.words()),
        None => ("soon", "A technician should look at it"),
    };
    let _ = write!(
        h,
        "<h1>What your car reported</h1><div class=\"card {class}\"><p><strong>{}</strong></p>",
        esc(urgency)
    );
    if b.faults.is_empty() {
        h.push_str("<p>The check-engine light is on.</p>");
    }
    for f in &b.faults {
        let what = f
            .description
            .as_deref()
            .unwrap_or("A fault the carmaker defines; the technician reads it out in the shop.");
        let _ = write!(
            h,
            "<p>{}<br><span class=\"muted\">Code {}{}</span></p>",
            esc(what),
            esc(&f.code),
            f.system
                .as_deref()
                .map(|s| format!(" · {}", esc(s)))
                .unwrap_or_default()
        );
    }
    h.push_str("</div>");

    match (q.state, &view.appointment) {
        (QuoteState::Sent, _) => {
            let _ = write!(
                h,
                "<h2>Your options</h2><p class=\"muted\">Estimated range for the likely repairs: {} to {}.</p>\
                 <form method=\"post\" action=\"/q/{token}/accept\">",
                money(b.low_minor, &b.currency),
                money(b.high_minor, &b.currency),
                token = esc(token)
            );
            for o in &b.options {
                let _ = write!(
                    h,
                    "<label class=\"option\"><input type=\"radio\" name=\"option\" value=\"{id}\"{checked} required> \
                     <span class=\"price\">{price}</span><strong>{title}</strong><br><span class=\"muted\">{includes}</span>\
                     <details><summary class=\"muted\">What this price includes</summary><table>",
                    id = esc(&o.id),
                    checked = if o.recommended { " checked" } else { "" },
                    price = money(o.total_minor, &b.currency),
                    title = esc(&o.title),
                    includes = esc(&o.includes),
                );
                for l in &o.lines {
                    let _ = write!(
                        h,
                        "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                        esc(&l.description),
                        money(l.amount_minor, &b.currency)
                    );
                }
                h.push_str("</table></details></label>");
            }
            h.push_str(
                "<button type=\"submit\" id=\"accept\">Accept and choose a time</button></form>",
            );
            h.push_str("<h2>Good to know</h2><div class=\"card\"><ul>");
            for a in &b.assumptions {
                let _ = write!(h, "<li class=\"muted\">{}</li>", esc(a));
            }
            let _ = write!(
                h,
                "</ul><p class=\"muted\">This quote is valid until {}.</p></div>\
                 <form method=\"post\" action=\"/q/{}/decline\"><label class=\"muted\" for=\"reason\">Not now? Tell us why (optional)</label>\
                 <input type=\"text\" id=\"reason\" name=\"reason\" maxlength=\"500\"><button class=\"secondary\" type=\"submit\">Decline this quote</button></form>",
                local(view.expires_ms, shop.utc_offset_minutes),
                esc(token)
            );
        }
        (QuoteState::Accepted, None) => {
            let chosen = b.option(&q.accepted_option);
            let _ = write!(
                h,
                "<div class=\"card done\"><p>You accepted <strong>{}</strong> ({}).</p></div><h2>Pick a time</h2>",
                esc(chosen.map(|o| o.title.as_str()).unwrap_or("")),
                chosen
                    .map(|o| money(o.total_minor, &b.currency))
                    .unwrap_or_default()
            );
            match crm.slots(&q.tenant, &shop.id, 0, 0).await {
                Ok(slots) if !slots.is_empty() => {
                    let _ = write!(
                        h,
                        "<form method=\"post\" action=\"/q/{}/book\"><div class=\"card\">",
                        esc(token)
                    );
                    let mut day = String::new();
                    for (i, s) in slots.iter().take(60).enumerate() {
                        let when = local(s.start_ms, shop.utc_offset_minutes);
                        let (d, t) = when.split_once(", ").unwrap_or((&when, ""));
                        if d != day {
                            let _ = write!(h, "<p><strong>{}</strong><br>", esc(d));
                            day = d.to_owned();
                        }
                        let _ = write!(
                            h,
                            "<label class=\"slot\"><input type=\"radio\" name=\"start\" value=\"{}\"{} required> {}</label>",
                            s.start_ms,
                            if i == 0 { " checked" } else { "" },
                            esc(t)
                        );
                    }
                    h.push_str(
                        "</div><button type=\"submit\" id=\"book\">Book this time</button></form>",
                    );
                }
                Ok(_) => {
                    let _ = write!(
                        h,
                        "<div class=\"card\"><p>No free times in the next two weeks online. Please call {}.</p></div>",
                        esc(&shop.phone)
                    );
                }
                Err(e) => {
                    tracing::error!(cause = %e, "slots for the quote page");
                    h.push_str("<div class=\"card\"><p>We could not load the free times just now; please reload the page.</p></div>");
                }
            }
        }
        (QuoteState::Accepted, Some(a)) => {
            let chosen = b.option(&q.accepted_option);
            let _ = write!(
                h,
                "<h2>You are booked</h2><div class=\"card\"><p>{} · {}</p></div>",
                esc(chosen.map(|o| o.title.as_str()).unwrap_or("")),
                chosen
                    .map(|o| money(o.total_minor, &b.currency))
                    .unwrap_or_default()
            );
            let _ = write!(
                h,
                "<div class=\"card done\" id=\"booked\"><p><strong>{}</strong></p><p>{}<br>{}<br>{}</p>\
                 <p class=\"muted\">The technician confirms the cause before any repair; you pay only for what you approved.</p></div>",
                esc(&local(a.start_ms, shop.utc_offset_minutes)),
                esc(&shop.name),
                esc(&shop.address),
                esc(&shop.phone)
            );
        }
        (QuoteState::Declined, _) => {
            let _ = write!(
                h,
                "<div class=\"card\"><p>You declined this quote. If you change your mind, call {} at {}.</p></div>",
                esc(&shop.name),
                esc(&shop.phone)
            );
        }
        (QuoteState::Draft, _) => {}
    }
    page(StatusCode::OK, "Your repair quote", &h)
}

#[derive(Debug, Deserialize)]
struct AcceptForm {
    // Missing fields arrive empty and are refused with a page, not a bare 422.
    #[serde(default)]
    option: String,
}

#[derive(Debug, Deserialize)]
struct DeclineForm {
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct BookForm {
    #[serde(default)]
    start: String,
}

fn back(token: &str) -> Response {
    Redirect::to(&format!("/q/{token}")).into_response()
}

/// An action the quote's state or the form refused: why, and a way back to the quote.
fn refused(token: &str, e: AppError) -> Response {
    match e {
        AppError::Invalid(m)
        | AppError::Db(DbError::Precondition(m) | DbError::Invalid(m) | DbError::Conflict(m)) => {
            page(
                StatusCode::CONFLICT,
                "That did not work",
                &format!(
                    "<h1>That did not work</h1><div class=\"card\"><p>{}</p><p><a href=\"/q/{}\">Back to your quote</a></p></div>",
                    esc(&m),
                    esc(token)
                ),
            )
        }
        other => problem_page(LinkProblem::App(other), None),
    }
}

async fn accept(
    State(crm): State<Arc<Crm>>,
    Path(token): Path<String>,
    Form(form): Form<AcceptForm>,
) -> Response {
    let view = match open(&crm, &token).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    match crm
        .accept_quote(&view.quote.tenant, OWNER, &view.quote.id, &form.option)
        .await
    {
        Ok(_) => back(&token),
        Err(e) => refused(&token, e),
    }
}

async fn decline(
    State(crm): State<Arc<Crm>>,
    Path(token): Path<String>,
    Form(form): Form<DeclineForm>,
) -> Response {
    let view = match open(&crm, &token).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let reason: String = form.reason.chars().take(500).collect();
    match crm
        .decline_quote(&view.quote.tenant, OWNER, &view.quote.id, &reason)
        .await
    {
        Ok(_) => back(&token),
        Err(e) => refused(&token, e),
    }
}

async fn book(
    State(crm): State<Arc<Crm>>,
    Path(token): Path<String>,
    Form(form): Form<BookForm>,
) -> Response {
    let view = match open(&crm, &token).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let Ok(start) = form.start.parse::<i64>() else {
        return refused(
            &token,
            AppError::Invalid("pick one of the times shown".into()),
        );
    };
    match crm
        .book(&view.quote.tenant, OWNER, &view.quote.id, start)
        .await
    {
        Ok(_) => back(&token),
        Err(e) => refused(&token, e),
    }
}
