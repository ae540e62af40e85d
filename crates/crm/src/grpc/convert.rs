//! Domain values to and from their protobuf form. The one place a proto enum number is
//! turned into a stage, a severity or a line kind.

use telltale_wire::crm::v1 as pb;

use crate::db::{
    Advisor, Appointment, Customer, Lead, QuoteRecord, QuoteState, Reason, ShopRecord,
    VehicleRecord,
};
use crate::knowledge::Severity;
use crate::lifecycle::Stage;
use crate::money::Currency;
use crate::quote::{LineKind, OptionDraft, QuoteLine, QuoteOption};
use crate::slots::{Hours, Slot};

pub(crate) fn severity(s: Option<Severity>) -> pb::Severity {
    match s {
        None => pb::Severity::Unspecified,
        Some(Severity::CanWait) => pb::Severity::CanWait,
        Some(Severity::ServiceSoon) => pb::Severity::ServiceSoon,
        Some(Severity::StopNow) => pb::Severity::StopNow,
    }
}

pub(crate) fn severity_from(n: i32) -> Result<Option<Severity>, String> {
    match pb::Severity::try_from(n) {
        Ok(pb::Severity::Unspecified) => Ok(None),
        Ok(pb::Severity::CanWait) => Ok(Some(Severity::CanWait)),
        Ok(pb::Severity::ServiceSoon) => Ok(Some(Severity::ServiceSoon)),
        Ok(pb::Severity::StopNow) => Ok(Some(Severity::StopNow)),
        Err(_) => Err(format!("unknown severity {n}")),
    }
}

pub(crate) fn stage(s: Stage) -> pb::LeadStatus {
    match s {
        Stage::New => pb::LeadStatus::New,
        Stage::Contacted => pb::LeadStatus::Contacted,
        Stage::Quoted => pb::LeadStatus::Quoted,
        Stage::Accepted => pb::LeadStatus::Accepted,
        Stage::Booked => pb::LeadStatus::Booked,
        Stage::InService => pb::LeadStatus::InService,
        Stage::ClosedWon => pb::LeadStatus::ClosedWon,
        Stage::ClosedLost => pb::LeadStatus::ClosedLost,
    }
}

pub(crate) fn stage_from(n: i32) -> Result<Stage, String> {
    Stage::ALL
        .into_iter()
        .find(|s| stage(*s) as i32 == n)
        .ok_or_else(|| format!("status {n} is not a lead status"))
}

pub(crate) fn reason(r: Reason) -> pb::LeadReason {
    match r {
        Reason::Manual => pb::LeadReason::Manual,
        Reason::PendingDtc => pb::LeadReason::PendingDtc,
        Reason::MilOn => pb::LeadReason::MilOn,
        Reason::ConfirmedDtc => pb::LeadReason::ConfirmedDtc,
    }
}

pub(crate) fn reason_from(n: i32) -> Option<Reason> {
    [
        Reason::Manual,
        Reason::PendingDtc,
        Reason::MilOn,
        Reason::ConfirmedDtc,
    ]
    .into_iter()
    .find(|r| reason(*r) as i32 == n)
}

pub(crate) fn lead(l: Lead) -> pb::Lead {
    pb::Lead {
        id: l.id,
        tenant_id: l.tenant,
        shop_id: l.shop_id,
        vin: l.vin,
        device_id: l.device_id,
        status: stage(l.status) as i32,
        reason: reason(l.reason) as i32,
        severity: severity(l.severity) as i32,
        faults: l
            .faults
            .into_iter()
            .map(|f| pb::Fault {
                code: f.code,
                ecu: f.ecu,
                description: f.description,
                system: f.system,
                severity: severity(f.severity) as i32,
                needs_diagnosis: f.needs_diagnosis,
            })
            .collect(),
        advisor_id: l.advisor_id,
        quote_id: l.quote_id,
        idempotency_key: l.idempotency_key,
        created_unix_ms: l.created_ms,
        updated_unix_ms: l.updated_ms,
        close_reason: l.close_reason,
    }
}

fn line_kind(k: LineKind) -> pb::LineKind {
    match k {
        LineKind::Part => pb::LineKind::Part,
        LineKind::Labor => pb::LineKind::Labor,
        LineKind::Fee => pb::LineKind::Fee,
        LineKind::Supplies => pb::LineKind::Supplies,
        LineKind::Tax => pb::LineKind::Tax,
    }
}

fn line(l: QuoteLine) -> pb::QuoteLine {
    pb::QuoteLine {
        kind: line_kind(l.kind) as i32,
        description: l.description,
        quantity: l.quantity,
        unit_minor: l.unit_minor,
        amount_minor: l.amount_minor,
        job: l.job,
    }
}

fn option(o: QuoteOption) -> pb::QuoteOption {
    pb::QuoteOption {
        id: o.id,
        title: o.title,
        includes: o.includes,
        lines: o.lines.into_iter().map(line).collect(),
        total_minor: o.total_minor,
        recommended: o.recommended,
    }
}

pub(crate) fn quote(q: QuoteRecord) -> pb::Quote {
    let status = match q.state {
        QuoteState::Draft => pb::QuoteStatus::Draft,
        QuoteState::Sent => pb::QuoteStatus::Sent,
        QuoteState::Accepted => pb::QuoteStatus::Accepted,
        QuoteState::Declined => pb::QuoteStatus::Declined,
    };
    let b = q.body;
    pb::Quote {
        id: q.id,
        lead_id: q.lead_id,
        shop_id: q.shop_id,
        version: q.version,
        status: status as i32,
        currency: b.currency,
        faults: b
            .faults
            .into_iter()
            .map(|f| pb::Fault {
                needs_diagnosis: f.description.is_none(),
                code: f.code,
                ecu: 0,
                description: f.description.unwrap_or_default(),
                system: f.system.unwrap_or_default(),
                severity: severity(f.severity) as i32,
            })
            .collect(),
        severity: severity(b.severity) as i32,
        needs_diagnosis: b.needs_diagnosis,
        options: b.options.into_iter().map(option).collect(),
        most_likely_minor: b.most_likely_minor,
        low_minor: b.low_minor,
        high_minor: b.high_minor,
        assumptions: b.assumptions,
        accepted_option_id: q.accepted_option,
        decline_reason: q.decline_reason,
        sent_unix_ms: q.sent_ms,
        link_expires_unix_ms: q.link_expires_ms,
        created_unix_ms: q.created_ms,
        updated_unix_ms: q.updated_ms,
        vin: q.vin,
    }
}

pub(crate) fn draft(o: pb::OptionRevision) -> Result<OptionDraft, String> {
    let lines = o
        .lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let kind = match pb::LineKind::try_from(l.kind) {
                Ok(pb::LineKind::Part) => LineKind::Part,
                Ok(pb::LineKind::Labor) => LineKind::Labor,
                Ok(pb::LineKind::Fee) => LineKind::Fee,
                Ok(pb::LineKind::Supplies) => LineKind::Supplies,
                Ok(pb::LineKind::Tax) => LineKind::Tax,
                _ => {
                    return Err(format!(
                        "option {:?}, line {}: kind must be part, labor or fee",
                        o.id,
                        i + 1
                    ));
                }
            };
            Ok(QuoteLine {
                kind,
                description: l.description,
                quantity: l.quantity,
                unit_minor: l.unit_minor,
                amount_minor: 0,
                job: l.job,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(OptionDraft {
        id: o.id,
        title: o.title,
        includes: o.includes,
        lines,
        recommended: o.recommended,
    })
}

pub(crate) fn slot(s: Slot) -> pb::Slot {
    pb::Slot {
        start_unix_ms: s.start_ms,
        end_unix_ms: s.end_ms,
        free_bays: s.free_bays,
    }
}

pub(crate) fn appointment(a: Appointment) -> pb::Appointment {
    pb::Appointment {
        id: a.id,
        shop_id: a.shop_id,
        lead_id: a.lead_id,
        quote_id: a.quote_id,
        start_unix_ms: a.start_ms,
        end_unix_ms: a.end_ms,
        bay: a.bay,
    }
}

pub(crate) fn shop(s: ShopRecord) -> pb::Shop {
    pb::Shop {
        id: s.id,
        name: s.name,
        currency: s.currency.code().to_owned(),
        labor_rate_minor: s.labor_rate_minor,
        diagnostic_fee_minor: s.diagnostic_fee_minor,
        supplies_bp: s.supplies_bp,
        supplies_cap_minor: s.supplies_cap_minor,
        tax_bp: s.tax_bp,
        tax_labor: s.tax_labor,
        utc_offset_minutes: s.utc_offset_minutes,
        hours: s
            .hours
            .into_iter()
            .map(|h| pb::OpeningHours {
                weekday: h.weekday,
                open_minute: h.open_minute,
                close_minute: h.close_minute,
            })
            .collect(),
        bays: s.bays,
        slot_minutes: s.slot_minutes,
        is_default: s.is_default,
        phone: s.phone,
        address: s.address,
    }
}

pub(crate) fn shop_from(s: pb::Shop) -> Result<ShopRecord, String> {
    Ok(ShopRecord {
        currency: Currency::parse(&s.currency)
            .map_err(|e| format!("currency {:?}: {e}", s.currency))?,
        id: s.id,
        name: s.name,
        labor_rate_minor: s.labor_rate_minor,
        diagnostic_fee_minor: s.diagnostic_fee_minor,
        supplies_bp: s.supplies_bp,
        supplies_cap_minor: s.supplies_cap_minor,
        tax_bp: s.tax_bp,
        tax_labor: s.tax_labor,
        utc_offset_minutes: s.utc_offset_minutes,
        hours: s
            .hours
            .into_iter()
            .map(|h| Hours {
                weekday: h.weekday,
                open_minute: h.open_minute,
                close_minute: h.close_minute,
            })
            .collect(),
        bays: s.bays,
        slot_minutes: s.slot_minutes,
        is_default: s.is_default,
        phone: s.phone,
        address: s.address,
    })
}

pub(crate) fn advisor(a: Advisor) -> pb::Advisor {
    pb::Advisor {
        id: a.id,
        shop_id: a.shop_id,
        name: a.name,
        email: a.email,
        active: a.active,
    }
}

pub(crate) fn advisor_from(a: pb::Advisor) -> Advisor {
    Advisor {
        id: a.id,
        shop_id: a.shop_id,
        name: a.name,
        email: a.email,
        active: a.active,
    }
}

pub(crate) fn customer(c: Customer) -> pb::Customer {
    pb::Customer {
        id: c.id,
        name: c.name,
        phone: c.phone,
        email: c.email,
    }
}

pub(crate) fn customer_from(c: pb::Customer) -> Customer {
    Customer {
        id: c.id,
        name: c.name,
        phone: c.phone,
        email: c.email,
    }
}

pub(crate) fn vehicle(v: VehicleRecord) -> pb::Vehicle {
    pb::Vehicle {
        vin: v.vin,
        customer_id: v.customer_id,
        home_shop_id: v.home_shop_id,
        make: v.make,
        model_year: v.model_year,
        plate: v.plate,
    }
}

pub(crate) fn vehicle_from(v: pb::Vehicle) -> VehicleRecord {
    VehicleRecord {
        vin: v.vin,
        customer_id: v.customer_id,
        home_shop_id: v.home_shop_id,
        make: v.make,
        model_year: v.model_year,
        plate: v.plate,
    }
}
