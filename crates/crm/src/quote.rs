//! The quote an owner reads: the pre-quote turned into choices with priced lines, and an
//! advisor's revision of those lines priced by the same rule.
//!
//! The owner chooses between diagnosis only and diagnosis with the most likely repair in each
//! part tier (good / better / best, "better" recommended). Each choice lists its lines: the
//! diagnostic fee, per job its parts and labor, and the shop supplies and tax computed per job
//! by [`crate::pricing`]'s one rule, so the "better" choice adds up to the pre-quote's most
//! likely figure. The estimate range (low–high over every probable repair) and the assumptions
//! stay beside the choices. This is what the database keeps (as JSON) and the quote page and
//! the gRPC API show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Tier;
use crate::knowledge::Severity;
use crate::money::{Money, MoneyError};
use crate::pricing::{self, Fault, PreQuote, Shop};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Part,
    /// Quantity in tenths of an hour, unit the hourly rate.
    Labor,
    Fee,
    Supplies,
    Tax,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    pub kind: LineKind,
    pub description: String,
    pub quantity: u32,
    pub unit_minor: i64,
    pub amount_minor: i64,
    /// The job the line belongs to; empty for the diagnostic fee.
    pub job: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteOption {
    pub id: String,
    pub title: String,
    pub includes: String,
    pub lines: Vec<QuoteLine>,
    pub total_minor: i64,
    pub recommended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteBody {
    pub currency: String,
    pub faults: Vec<Fault>,
    pub severity: Option<Severity>,
    pub needs_diagnosis: bool,
    pub options: Vec<QuoteOption>,
    pub most_likely_minor: i64,
    pub low_minor: i64,
    pub high_minor: i64,
    pub assumptions: Vec<String>,
}

/// An option as an advisor writes it: parts, labor and fee lines; the rest is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDraft {
    pub id: String,
    pub title: String,
    pub includes: String,
    pub lines: Vec<QuoteLine>,
    pub recommended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("a quote needs at least one option")]
    NoOptions,
    #[error("option {0:?} appears twice")]
    DuplicateOption(String),
    #[error("option {option:?} needs an id and a title")]
    Unnamed { option: String },
    #[error("option {option:?}, line {line}: {why}")]
    BadLine {
        option: String,
        line: usize,
        why: &'static str,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

pub const DIAGNOSIS_ONLY: &str = "diagnosis";

fn fee_line(shop: &Shop) -> QuoteLine {
    QuoteLine {
        kind: LineKind::Fee,
        description: "Diagnosis: a technician confirms the cause".to_owned(),
        quantity: 1,
        unit_minor: shop.diagnostic_fee.minor,
        amount_minor: shop.diagnostic_fee.minor,
        job: String::new(),
    }
}

fn diagnosis_draft(shop: &Shop, recommended: bool) -> OptionDraft {
    OptionDraft {
        id: DIAGNOSIS_ONLY.to_owned(),
        title: "Diagnosis only".to_owned(),
        includes: "A technician finds the cause and tells you what the repair will cost before \
                   doing it."
            .to_owned(),
        lines: vec![fee_line(shop)],
        recommended,
    }
}

fn tier_id(tier: Tier) -> &'static str {
    match tier {
        Tier::Economy => "good",
        Tier::OeEquivalent => "better",
        Tier::Oem => "best",
    }
}

/// Prices an option's parts, labor and fee lines at `shop`: supplies and tax per job, by
/// [`pricing`]'s rule. Supplies and tax lines in the draft are dropped and recomputed.
pub fn price_option(shop: &Shop, draft: OptionDraft) -> Result<QuoteOption, QuoteError> {
    let OptionDraft {
        id,
        title,
        includes,
        lines: drafted,
        recommended,
    } = draft;
    if id.trim().is_empty() || title.trim().is_empty() {
        return Err(QuoteError::Unnamed { option: id });
    }
    let currency = shop.currency();
    let bad = |line: usize, why| QuoteError::BadLine {
        option: id.clone(),
        line: line + 1,
        why,
    };
    // Per job: parts, labor, fees.
    let mut groups: BTreeMap<String, [Money; 3]> = BTreeMap::new();
    let mut lines = Vec::new();
    for (i, mut line) in drafted.into_iter().enumerate() {
        if matches!(line.kind, LineKind::Supplies | LineKind::Tax) {
            continue;
        }
        if line.quantity == 0 {
            return Err(bad(i, "quantity must be at least 1"));
        }
        if line.unit_minor < 0 {
            return Err(bad(i, "a price cannot be negative"));
        }
        if line.description.trim().is_empty() {
            return Err(bad(i, "a line needs a description"));
        }
        let unit = Money::new(line.unit_minor, currency);
        let (amount, slot) = match line.kind {
            LineKind::Part => (unit.times(line.quantity)?, 0),
            LineKind::Labor => (unit.times_tenths(line.quantity)?, 1),
            _ => (unit.times(line.quantity)?, 2),
        };
        line.amount_minor = amount.minor;
        let zero = Money::zero(currency);
        let group = groups.entry(line.job.clone()).or_insert([zero; 3]);
        group[slot] = group[slot].checked_add(amount)?;
        lines.push(line);
    }
    let mut total = Money::zero(currency);
    for (job, [parts, labor, fees]) in &groups {
        let (supplies, tax) = pricing::charges(shop, *parts, *labor, *fees)?;
        total = total
            .checked_add(*parts)?
            .checked_add(*labor)?
            .checked_add(*fees)?;
        total = total.checked_add(supplies)?.checked_add(tax)?;
        let what = if job.is_empty() {
            String::new()
        } else {
            // Job ids are snake_case words: "replace_spark_plugs" reads "replace spark plugs".
            format!(" ({})", job.replace('_', " "))
        };
        for (kind, amount, words) in [
            (LineKind::Supplies, supplies, "Shop supplies"),
            (LineKind::Tax, tax, "Tax"),
        ] {
            if amount.minor > 0 {
                lines.push(QuoteLine {
                    kind,
                    description: format!("{words}{what}"),
                    quantity: 1,
                    unit_minor: amount.minor,
                    amount_minor: amount.minor,
                    job: job.clone(),
                });
            }
        }
    }
    Ok(QuoteOption {
        id,
        title,
        includes,
        lines,
        total_minor: total.minor,
        recommended,
    })
}

/// Prices a set of options; ids must be distinct. Exactly one is recommended: the first
/// marked so, else the first.
pub fn price_options(
    shop: &Shop,
    drafts: Vec<OptionDraft>,
) -> Result<Vec<QuoteOption>, QuoteError> {
    if drafts.is_empty() {
        return Err(QuoteError::NoOptions);
    }
    let mut options: Vec<QuoteOption> = Vec::new();
    for draft in drafts {
        if options.iter().any(|o| o.id == draft.id) {
            return Err(QuoteError::DuplicateOption(draft.id));
        }
        options.push(price_option(shop, draft)?);
    }
    let chosen = options.iter().position(|o| o.recommended).unwrap_or(0);
    for (i, o) in options.iter_mut().enumerate() {
        o.recommended = i == chosen;
    }
    Ok(options)
}

impl QuoteBody {
    /// The owner's choices from a pre-quote: diagnosis only, and diagnosis with each code's
    /// most likely repair in every tier the catalog can price it in.
    pub fn from_prequote(pq: &PreQuote, shop: &Shop) -> Result<QuoteBody, QuoteError> {
        let fee = fee_line(shop);
        // Per code, its most likely job that can be priced ("better" parts), as the pre-quote
        // picks it; each job once.
        let mut jobs = Vec::new();
        for fault in &pq.faults {
            let likely = pq.options.iter().find(|o| {
                o.code == fault.code && o.tiers.iter().any(|t| t.tier == Tier::OeEquivalent)
            });
            if let Some(o) = likely
                && !jobs.iter().any(|j: &&pricing::JobOption| j.job == o.job)
            {
                jobs.push(o);
            }
        }
        let mut drafts = vec![diagnosis_draft(shop, jobs.is_empty())];
        let names: Vec<String> = jobs.iter().map(|j| j.name.to_lowercase()).collect();
        for tier in Tier::ALL {
            let mut lines = vec![fee.clone()];
            let mut priced = true;
            for job in &jobs {
                let Some(price) = job.tiers.iter().find(|t| t.tier == tier) else {
                    priced = false;
                    break;
                };
                for part in &price.parts {
                    lines.push(QuoteLine {
                        kind: LineKind::Part,
                        description: part.description.clone(),
                        quantity: part.quantity,
                        unit_minor: part.unit.minor,
                        amount_minor: part.amount.minor,
                        job: job.job.clone(),
                    });
                }
                lines.push(QuoteLine {
                    kind: LineKind::Labor,
                    description: price.labor.description.clone(),
                    quantity: price.labor.quantity,
                    unit_minor: price.labor.unit.minor,
                    amount_minor: price.labor.amount.minor,
                    job: job.job.clone(),
                });
            }
            if !priced || jobs.is_empty() {
                continue;
            }
            let includes: Vec<&str> = jobs.iter().map(|j| j.includes.as_str()).collect();
            drafts.push(OptionDraft {
                id: tier_id(tier).to_owned(),
                title: format!("Diagnosis and {}: {}", names.join(" and "), tier.words()),
                includes: includes.join(" "),
                lines,
                recommended: tier == Tier::OeEquivalent,
            });
        }
        Ok(QuoteBody {
            currency: shop.currency().code().to_owned(),
            faults: pq.faults.clone(),
            severity: pq.severity,
            needs_diagnosis: pq.needs_diagnosis,
            options: price_options(shop, drafts)?,
            most_likely_minor: pq.most_likely.minor,
            low_minor: pq.low.minor,
            high_minor: pq.high.minor,
            assumptions: pq.assumptions.clone(),
        })
    }

    /// A quote with nothing to price but the diagnosis: the lamp is on with no code, say.
    pub fn diagnosis_only(shop: &Shop, why: &str) -> Result<QuoteBody, QuoteError> {
        let options = price_options(shop, vec![diagnosis_draft(shop, true)])?;
        let total = options[0].total_minor;
        Ok(QuoteBody {
            currency: shop.currency().code().to_owned(),
            faults: Vec::new(),
            severity: None,
            needs_diagnosis: true,
            options,
            most_likely_minor: total,
            low_minor: total,
            high_minor: total,
            assumptions: vec![why.to_owned()],
        })
    }

    pub fn option(&self, id: &str) -> Option<&QuoteOption> {
        self.options.iter().find(|o| o.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn shop() -> Shop {
        let usd = |m| Money::new(m, Currency::parse("USD").unwrap());
        Shop {
            labor_rate: usd(10_000),
            diagnostic_fee: usd(5_000),
            supplies_bp: 500,
            supplies_cap: usd(1_000),
            tax_bp: 1_000,
            tax_labor: true,
        }
    }

    fn line(kind: LineKind, quantity: u32, unit_minor: i64, job: &str) -> QuoteLine {
        QuoteLine {
            kind,
            description: "x".into(),
            quantity,
            unit_minor,
            amount_minor: 0,
            job: job.into(),
        }
    }

    fn draft(id: &str, lines: Vec<QuoteLine>) -> OptionDraft {
        OptionDraft {
            id: id.into(),
            title: "T".into(),
            includes: String::new(),
            lines,
            recommended: false,
        }
    }

    #[test]
    fn supplies_and_tax_are_per_job_and_recomputed() {
        let o = price_option(
            &shop(),
            draft(
                "a",
                vec![
                    line(LineKind::Fee, 1, 5_000, ""),
                    line(LineKind::Part, 2, 1_000, "j1"),
                    line(LineKind::Labor, 30, 10_000, "j1"),
                    line(LineKind::Tax, 1, 999_999, "j1"),
                    line(LineKind::Labor, 5, 10_000, "j2"),
                ],
            ),
        )
        .unwrap();
        // Fee 50.00 + tax 10 % (labor taxed) 5.00 = 55.00. j1: parts 20.00, labor 3.0 h =
        // 300.00, supplies 5 % = 15.00 capped at 10.00, tax 10 % of 330.00 = 33.00 → 363.00.
        // j2: labor 50.00, supplies 2.50, tax 5.25 → 57.75. Total 475.75; the stray tax line
        // is dropped and recomputed.
        assert_eq!(o.total_minor, 47_575);
        assert_eq!(
            o.lines.iter().filter(|l| l.kind == LineKind::Tax).count(),
            3
        );
        assert_eq!(
            o.lines.iter().map(|l| l.amount_minor).sum::<i64>(),
            o.total_minor
        );
    }

    #[test]
    fn bad_drafts_are_named() {
        let s = shop();
        let err = |d| price_options(&s, vec![d]).unwrap_err().to_string();
        assert!(
            err(draft("a", vec![line(LineKind::Part, 0, 1, "j")])).contains("line 1: quantity")
        );
        assert!(
            err(draft(
                "a",
                vec![
                    line(LineKind::Fee, 1, 1, ""),
                    line(LineKind::Part, 1, -5, "j")
                ]
            ))
            .contains("line 2: a price cannot be negative")
        );
        assert!(err(draft("", vec![])).contains("needs an id and a title"));
        let twice = price_options(&s, vec![draft("a", vec![]), draft("a", vec![])]).unwrap_err();
        assert_eq!(twice, QuoteError::DuplicateOption("a".into()));
        assert_eq!(
            price_options(&s, vec![]).unwrap_err(),
            QuoteError::NoOptions
        );
        let one = price_options(&s, vec![draft("a", vec![]), draft("b", vec![])]).unwrap();
        assert_eq!(
            one.iter().filter(|o| o.recommended).count(),
            1,
            "exactly one is recommended"
        );
    }
}
