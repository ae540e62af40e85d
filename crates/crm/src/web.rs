//! The owner's quote page: server-rendered HTML over axum that works without JavaScript and
//! reads well on a phone. An owner opens the signed link, reads the problem in plain words and
//! how urgent it is, picks an option and accepts (or declines), then picks an appointment
//! slot. Every form posts back to the same link and is answered with a redirect to it
//! (post/redirect/get), so a reload never repeats an action. An expired, replaced or damaged
//! link gets a page that says so and what to do, never an error dump.
//!
//! The HTML is in `templates/owner/` (askama: checked when the crate compiles, every value
//! escaped); this module turns a quote into the text those templates show.

use std::sync::Arc;

use askama::Template;
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

/// A page as the owner gets it: rendered from its template (askama, which escapes every value
/// it puts into the HTML), never cached and never sent on as a referrer, since the link is the
/// key to the quote. A template that fails to render is logged and answered with a plain 500.
fn page(status: StatusCode, template: &impl Template) -> Response {
    let mut response = match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(cause = %e, "quote page template");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be made\n",
            )
                .into_response()
        }
    };
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

/// Why the quote cannot be shown, or why an action did not work, and what to do.
#[derive(Template)]
#[template(path = "owner/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    paragraphs: Vec<&'a str>,
    /// The shop's name and phone, for a link that has run out.
    call: Option<String>,
    /// Where the quote is, after a refused action.
    back: Option<String>,
}

impl<'a> MessagePage<'a> {
    fn new(title: &'a str, paragraphs: Vec<&'a str>) -> Self {
        MessagePage {
            title,
            paragraphs,
            call: None,
            back: None,
        }
    }
}

/// The quote page; exactly one of `choosing`, `picking`, `booked` and `declined` is set, by the
/// quote's state.
#[derive(Template)]
#[template(path = "owner/quote.html")]
struct QuotePage<'a> {
    title: &'a str,
    shop_name: &'a str,
    vin: &'a str,
    urgency_class: &'a str,
    urgency: &'a str,
    faults: Vec<FaultView<'a>>,
    choosing: Option<Choosing<'a>>,
    picking: Option<Picking>,
    booked: Option<Booked<'a>>,
    /// The shop's name and phone.
    declined: Option<(&'a str, &'a str)>,
}

struct FaultView<'a> {
    what: &'a str,
    code: &'a str,
    system: Option<&'a str>,
}

/// A sent quote: its options to accept, or decline.
struct Choosing<'a> {
    accept_action: String,
    decline_action: String,
    low: String,
    high: String,
    options: Vec<OptionView<'a>>,
    assumptions: &'a [String],
    valid_until: String,
}

struct OptionView<'a> {
    id: &'a str,
    recommended: bool,
    price: String,
    title: &'a str,
    includes: &'a str,
    /// Each line's description and amount.
    lines: Vec<(&'a str, String)>,
}

/// An accepted quote without an appointment: the free times, by day.
struct Picking {
    chosen: String,
    price: String,
    book_action: String,
    days: Vec<DayView>,
    /// The shop's phone, for when no time is free online.
    phone: String,
    /// The free times could not be read.
    failed: bool,
}

struct DayView {
    label: String,
    slots: Vec<SlotView>,
}

struct SlotView {
    start_ms: i64,
    time: String,
    checked: bool,
}

struct Booked<'a> {
    chosen: &'a str,
    price: String,
    when: String,
    shop_name: &'a str,
    address: &'a str,
    phone: &'a str,
}

/// A time in the shop's local time: "Mon 23 Nov, 08:00".
fn local(ms: i64, offset_minutes: i32) -> String {
    DateTime::from_timestamp_millis(ms + i64::from(offset_minutes) * 60_000)
        .map(|t| t.format("%a %-d %b, %H:%M").to_string())
        .unwrap_or_default()
}

fn problem_page(problem: LinkProblem, shop_contact: Option<String>) -> Response {
    match problem {
        LinkProblem::Link(LinkError::Expired { .. }) => page(
            StatusCode::GONE,
            &MessagePage {
                call: shop_contact,
                ..MessagePage::new(
                    "This quote link has expired",
                    vec!["Quote links work for a limited time so that prices stay current."],
                )
            },
        ),
        LinkProblem::Replaced => page(
            StatusCode::GONE,
            &MessagePage {
                call: shop_contact,
                ..MessagePage::new(
                    "A newer quote was sent",
                    vec![
                        "The shop updated this quote and sent you a new link; please use the newest message.",
                    ],
                )
            },
        ),
        LinkProblem::Link(LinkError::Tampered)
        | LinkProblem::App(AppError::Db(DbError::NotFound(_))) => page(
            StatusCode::NOT_FOUND,
            &MessagePage::new(
                "This link does not work",
                vec![
                    "The link is incomplete or was changed. Open it again from the message the shop sent you, making sure it is copied whole.",
                ],
            ),
        ),
        LinkProblem::App(e) => {
            crate::metrics::bump(&crate::metrics::DATABASE_ERRORS);
            tracing::error!(cause = %e, "quote page");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                &MessagePage::new(
                    "Please try again in a minute",
                    vec!["We could not load your quote just now."],
                ),
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
            Err(problem_page(problem, contact))
        }
    }
}

async fn show(State(crm): State<Arc<Crm>>, Path(token): Path<String>) -> Response {
    match open(&crm, &token).await {
        Ok(view) => render(&crm, &token, &view).await,
        Err(page) => page,
    }
}

/// The link's own address, for forms and the way back. The token is a URL-safe string (checked
/// by `open_link` before anything is shown), so it needs no further encoding in a path.
fn action(token: &str, verb: &str) -> String {
    if verb.is_empty() {
        format!("/q/{token}")
    } else {
        format!("/q/{token}/{verb}")
    }
}

/// Free times grouped by the shop's local day, the first one chosen.
fn days(slots: &[crate::slots::Slot], offset_minutes: i32) -> Vec<DayView> {
    let mut days: Vec<DayView> = Vec::new();
    for (i, s) in slots.iter().take(60).enumerate() {
        let when = local(s.start_ms, offset_minutes);
        let (day, time) = when.split_once(", ").unwrap_or((&when, ""));
        let slot = SlotView {
            start_ms: s.start_ms,
            time: time.to_owned(),
            checked: i == 0,
        };
        match days.last_mut() {
            Some(last) if last.label == day => last.slots.push(slot),
            _ => days.push(DayView {
                label: day.to_owned(),
                slots: vec![slot],
            }),
        }
    }
    days
}

async fn render(crm: &Crm, token: &str, view: &OwnerView) -> Response {
    use crate::knowledge::Severity;
    let q = &view.quote;
    let b = &q.body;
    let shop = &view.shop;
    let currency = &b.currency;
    let (urgency_class, urgency) = match b.severity {
        Some(s @ Severity::StopNow) => ("urgent", s.words()),
        Some(s @ Severity::ServiceSoon) => ("soon", s.words()),
        Some(s @ Severity::CanWait) => ("wait", s.words()),
        None => ("soon", "A technician should look at it"),
    };
    let chosen = b.option(&q.accepted_option);
    let chosen_title = chosen.map(|o| o.title.as_str()).unwrap_or("");
    let chosen_price = chosen
        .map(|o| money(o.total_minor, currency))
        .unwrap_or_default();
    let mut page_view = QuotePage {
        title: "Your repair quote",
        shop_name: &shop.name,
        vin: &q.vin,
        urgency_class,
        urgency,
        faults: b
            .faults
            .iter()
            .map(|f| FaultView {
                what: f.description.as_deref().unwrap_or(
                    "A fault the carmaker defines; the technician reads it out in the shop.",
                ),
                code: &f.code,
                system: f.system.as_deref(),
            })
            .collect(),
        choosing: None,
        picking: None,
        booked: None,
        declined: None,
    };
    match (q.state, &view.appointment) {
        (QuoteState::Sent, _) => {
            page_view.choosing = Some(Choosing {
                accept_action: action(token, "accept"),
                decline_action: action(token, "decline"),
                low: money(b.low_minor, currency),
                high: money(b.high_minor, currency),
                options: b
                    .options
                    .iter()
                    .map(|o| OptionView {
                        id: &o.id,
                        recommended: o.recommended,
                        price: money(o.total_minor, currency),
                        title: &o.title,
                        includes: &o.includes,
                        lines: o
                            .lines
                            .iter()
                            .map(|l| (l.description.as_str(), money(l.amount_minor, currency)))
                            .collect(),
                    })
                    .collect(),
                assumptions: &b.assumptions,
                valid_until: local(view.expires_ms, shop.utc_offset_minutes),
            });
        }
        (QuoteState::Accepted, None) => {
            let slots = crm.slots(&q.tenant, &shop.id, 0, 0).await;
            if let Err(e) = &slots {
                tracing::error!(cause = %e, "slots for the quote page");
            }
            page_view.picking = Some(Picking {
                chosen: chosen_title.to_owned(),
                price: chosen_price,
                book_action: action(token, "book"),
                failed: slots.is_err(),
                days: slots
                    .map(|s| days(&s, shop.utc_offset_minutes))
                    .unwrap_or_default(),
                phone: shop.phone.clone(),
            });
        }
        (QuoteState::Accepted, Some(a)) => {
            page_view.booked = Some(Booked {
                chosen: chosen_title,
                price: chosen_price,
                when: local(a.start_ms, shop.utc_offset_minutes),
                shop_name: &shop.name,
                address: &shop.address,
                phone: &shop.phone,
            });
        }
        (QuoteState::Declined, _) => page_view.declined = Some((&shop.name, &shop.phone)),
        (QuoteState::Draft, _) => {}
    }
    page(StatusCode::OK, &page_view)
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
    Redirect::to(&action(token, "")).into_response()
}

/// An action the quote's state or the form refused: why, and a way back to the quote.
fn refused(token: &str, e: AppError) -> Response {
    match e {
        AppError::Invalid(m)
        | AppError::Db(DbError::Precondition(m) | DbError::Invalid(m) | DbError::Conflict(m)) => {
            page(
                StatusCode::CONFLICT,
                &MessagePage {
                    back: Some(action(token, "")),
                    ..MessagePage::new("That did not work", vec![&m])
                },
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
