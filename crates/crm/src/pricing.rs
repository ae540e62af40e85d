//! The pre-quote: what a lead's trouble codes will probably cost to fix at this shop, before
//! anyone has looked at the car.
//!
//! For each code the knowledge base gives the probable jobs with their likelihoods. Each job is
//! priced in the three part tiers: parts from the catalog (the make's own part where the
//! catalog has one), labor hours from the labor guide (the make's time where it differs) times
//! the shop's rate, shop supplies as a share of labor up to a cap, and tax. A diagnostic fee
//! comes first on every quote: diagnosis confirms the cause before any work.
//!
//! - **Most likely**: the fee plus, per code, its most likely job with "better" parts.
//! - **Low**: the fee plus, per code, its cheapest probable job with "good" parts.
//! - **High**: the fee plus, per code, its dearest probable job with "best" parts.
//!
//! A job two codes share (two misfiring cylinders, one set of spark plugs) counts once. An
//! unknown code adds nothing but the diagnosis: the repair is quoted after it. Every amount is
//! integer minor units; every assumption behind the figures is written out for the owner.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog::{LaborGuide, PartsCatalog, Tier};
use crate::knowledge::{DIAGNOSIS, KnowledgeBase, Severity};
use crate::money::{Currency, Money, MoneyError};

/// What a shop charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shop {
    /// Per hour of labor.
    pub labor_rate: Money,
    /// Charged on every quote.
    pub diagnostic_fee: Money,
    /// Shop supplies as basis points of labor (1000 = 10 %), at most `supplies_cap`.
    pub supplies_bp: u32,
    pub supplies_cap: Money,
    /// Sales tax in basis points (825 = 8.25 %) on parts and supplies...
    pub tax_bp: u32,
    /// ...and on labor and the diagnostic fee where the jurisdiction taxes labor.
    pub tax_labor: bool,
}

impl Shop {
    pub fn currency(&self) -> Currency {
        self.labor_rate.currency
    }
}

/// What is known of the car: its make (for make-specific labor times and parts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vehicle {
    pub make: Option<String>,
    pub model_year: Option<u16>,
}

/// The data a quote is computed from.
#[derive(Debug, Clone, Copy)]
pub struct PriceBook<'a> {
    pub knowledge: &'a KnowledgeBase,
    pub labor: &'a LaborGuide,
    pub parts: &'a PartsCatalog,
}

/// One line of a priced job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub description: String,
    /// Parts: the count; labor: tenths of an hour.
    pub quantity: u32,
    pub unit: Money,
    pub amount: Money,
}

/// A job priced in one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierPrice {
    pub tier: Tier,
    pub parts: Vec<Line>,
    pub labor: Line,
    pub supplies: Money,
    pub tax: Money,
    pub total: Money,
}

/// One probable job for one code, in every tier it could be priced in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOption {
    pub code: String,
    pub job: String,
    pub name: String,
    pub includes: String,
    pub likelihood_pct: u8,
    /// Empty when the shop's catalog or labor guide lacks something the job needs (said in
    /// `missing`).
    pub tiers: Vec<TierPrice>,
    pub missing: Vec<String>,
}

impl JobOption {
    fn price(&self, tier: Tier) -> Option<&TierPrice> {
        self.tiers.iter().find(|t| t.tier == tier)
    }
}

/// A code as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Fault {
    pub code: String,
    /// `None` for a code the knowledge base does not know (manufacturer-specific, say).
    pub system: Option<String>,
    pub description: Option<String>,
    pub severity: Option<Severity>,
}

/// The pre-quote for a set of codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreQuote {
    pub faults: Vec<Fault>,
    /// The most urgent of the known faults'; `None` when none is known.
    pub severity: Option<Severity>,
    /// True when any code is unknown: a technician diagnoses before a repair is quoted.
    pub needs_diagnosis: bool,
    /// The diagnostic fee with its tax.
    pub diagnosis: Money,
    /// Per code, its probable jobs, most likely first.
    pub options: Vec<JobOption>,
    pub most_likely: Money,
    pub low: Money,
    pub high: Money,
    /// The assumptions behind the figures, in the owner's words.
    pub assumptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("no codes to quote")]
    NoCodes,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

fn percent(bp: u32) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    match frac {
        0 => format!("{whole}%"),
        f if f % 10 == 0 => format!("{whole}.{}%", f / 10),
        f => format!("{whole}.{f:02}%"),
    }
}

fn hours(tenths: u32) -> String {
    format!("{}.{} h", tenths / 10, tenths % 10)
}

/// The shop's supplies and tax on one job's (or the fee's) parts, labor and fees: supplies
/// are a share of labor up to the cap; tax is on parts and supplies, and on labor and fees
/// where labor is taxed. Every quote, computed or revised by an advisor, uses this one rule.
pub(crate) fn charges(
    shop: &Shop,
    parts: Money,
    labor: Money,
    fees: Money,
) -> Result<(Money, Money), MoneyError> {
    let supplies = labor.basis_points(shop.supplies_bp)?.min(shop.supplies_cap);
    let mut taxable = parts.checked_add(supplies)?;
    if shop.tax_labor {
        taxable = taxable.checked_add(labor)?.checked_add(fees)?;
    }
    Ok((supplies, taxable.basis_points(shop.tax_bp)?))
}

/// Prices one job in one tier; `Err` names what the shop's data lacks.
fn price_job(
    book: PriceBook<'_>,
    shop: &Shop,
    vehicle: &Vehicle,
    job: &crate::knowledge::Job,
    tier: Tier,
) -> Result<Result<TierPrice, String>, MoneyError> {
    let make = vehicle.make.as_deref();
    let currency = shop.currency();
    let mut parts = Vec::new();
    let mut parts_total = Money::zero(currency);
    for (category, qty) in &job.parts {
        let Some(part) = book.parts.pick(category, tier, make) else {
            return Ok(Err(format!("no {category} part in the {tier:?} tier")));
        };
        if part.price.currency != currency {
            return Ok(Err(format!(
                "part {} is priced in {}, the shop in {currency}",
                part.part_number, part.price.currency
            )));
        }
        let amount = part.price.times(*qty)?;
        parts_total = parts_total.checked_add(amount)?;
        parts.push(Line {
            description: format!("{} ({})", part.description, part.part_number),
            quantity: *qty,
            unit: part.price,
            amount,
        });
    }
    let Some(time) = book.labor.time(&job.labor_op, make) else {
        return Ok(Err(format!("no labor time for {}", job.labor_op)));
    };
    let labor_amount = shop.labor_rate.times_tenths(time.hours_x10)?;
    let labor = Line {
        description: format!("{} ({})", time.name, hours(time.hours_x10)),
        quantity: time.hours_x10,
        unit: shop.labor_rate,
        amount: labor_amount,
    };
    let (supplies, tax) = charges(shop, parts_total, labor_amount, Money::zero(currency))?;
    let total = parts_total
        .checked_add(labor_amount)?
        .checked_add(supplies)?
        .checked_add(tax)?;
    Ok(Ok(TierPrice {
        tier,
        parts,
        labor,
        supplies,
        tax,
        total,
    }))
}

/// The pre-quote for `codes` (duplicates ignored) on `vehicle` at `shop`.
pub fn quote(
    book: PriceBook<'_>,
    shop: &Shop,
    vehicle: &Vehicle,
    codes: &[&str],
) -> Result<PreQuote, PricingError> {
    let codes: Vec<&str> = {
        let mut seen = BTreeSet::new();
        codes.iter().copied().filter(|c| seen.insert(*c)).collect()
    };
    if codes.is_empty() {
        return Err(PricingError::NoCodes);
    }
    let currency = shop.currency();
    let zero = Money::zero(currency);
    let (_, fee_tax) = charges(shop, zero, zero, shop.diagnostic_fee)?;
    let diagnosis = shop.diagnostic_fee.checked_add(fee_tax)?;
    let mut faults = Vec::new();
    let mut options = Vec::new();
    let mut assumptions = vec![format!(
        "Diagnosis ({diagnosis}) confirms the cause before any work is done; it is included in \
         every figure."
    )];
    let mut needs_diagnosis = false;
    // Per code: (most likely, cheapest, dearest) job ids and totals.
    let mut picks: Vec<[Option<(String, Money)>; 3]> = Vec::new();

    for code in &codes {
        let info = book.knowledge.code(code);
        faults.push(Fault {
            code: (*code).to_owned(),
            system: info.map(|i| i.system.clone()),
            description: info.map(|i| i.description.clone()),
            severity: info.map(|i| i.severity),
        });
        let Some(_) = info else {
            needs_diagnosis = true;
            assumptions.push(format!(
                "{code} is not in our knowledge base (it may be specific to the carmaker): a \
                 technician diagnoses it before any repair is quoted."
            ));
            picks.push([None, None, None]);
            continue;
        };
        let mut code_options = Vec::new();
        for likely in book.knowledge.probable_jobs(code) {
            if likely.job == DIAGNOSIS {
                continue;
            }
            let Some(job) = book.knowledge.job(&likely.job) else {
                continue;
            };
            let mut tiers = Vec::new();
            let mut missing = Vec::new();
            for tier in Tier::ALL {
                match price_job(book, shop, vehicle, job, tier)? {
                    Ok(p) => tiers.push(p),
                    Err(why) => missing.push(why),
                }
            }
            code_options.push(JobOption {
                code: (*code).to_owned(),
                job: job.id.clone(),
                name: job.name.clone(),
                includes: job.includes.clone(),
                likelihood_pct: likely.likelihood_pct,
                tiers,
                missing,
            });
        }
        let likely = code_options
            .iter()
            .find_map(|o| o.price(Tier::OeEquivalent).map(|p| (o, p.total)));
        let cheapest = code_options
            .iter()
            .filter_map(|o| o.price(Tier::Economy).map(|p| (o, p.total)))
            .min_by_key(|(_, t)| t.minor);
        let dearest = code_options
            .iter()
            .filter_map(|o| o.price(Tier::Oem).map(|p| (o, p.total)))
            .max_by_key(|(_, t)| t.minor);
        match likely {
            Some((o, _)) => {
                let others: Vec<String> = code_options
                    .iter()
                    .filter(|x| x.job != o.job)
                    .map(|x| format!("{} ({}%)", x.name.to_lowercase(), x.likelihood_pct))
                    .collect();
                let mut text = format!(
                    "{code}: the most likely figure assumes {} is the fix ({}% of cases)",
                    o.name.to_lowercase(),
                    o.likelihood_pct
                );
                if !others.is_empty() {
                    text.push_str(&format!("; other likely causes: {}", others.join(", ")));
                }
                text.push('.');
                assumptions.push(text);
            }
            None => {
                needs_diagnosis = true;
                assumptions.push(format!(
                    "{code}: the shop's catalog cannot price its likely repairs yet; the repair \
                     is quoted after diagnosis."
                ));
            }
        }
        let id = |p: Option<(&JobOption, Money)>| p.map(|(o, t)| (o.job.clone(), t));
        picks.push([id(likely), id(cheapest), id(dearest)]);
        options.extend(code_options);
    }

    // Sum one of the three picks over the codes, each job once.
    let sum = |which: usize| -> Result<Money, MoneyError> {
        let mut seen = BTreeSet::new();
        let mut total = diagnosis;
        for p in &picks {
            if let Some((job, amount)) = &p[which]
                && seen.insert(job.clone())
            {
                total = total.checked_add(*amount)?;
            }
        }
        Ok(total)
    };
    let (most_likely, low, high) = (sum(0)?, sum(1)?, sum(2)?);

    let make_note = match &vehicle.make {
        Some(m) => format!(" ({m} times where the guide has them)"),
        None => String::new(),
    };
    assumptions.push(format!(
        "Labor at {}/h from the labor guide{make_note}; shop supplies {} of labor, at most {}.",
        shop.labor_rate,
        percent(shop.supplies_bp),
        shop.supplies_cap
    ));
    assumptions.push(format!(
        "Tax {} on parts and supplies{}.",
        percent(shop.tax_bp),
        if shop.tax_labor { " and labor" } else { "" }
    ));
    assumptions.push(
        "The most likely figure uses \"better\" parts; the range runs from \"good\" parts on the \
         cheapest likely repair to \"best\" parts on the dearest."
            .to_owned(),
    );
    let severity = faults.iter().filter_map(|f| f.severity).max();
    Ok(PreQuote {
        faults,
        severity,
        needs_diagnosis,
        diagnosis,
        options,
        most_likely,
        low,
        high,
        assumptions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{LaborGuide, PartsCatalog};

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("USD").unwrap())
    }

    /// A shop: $150/h, $120 diagnosis, supplies 10 % of labor up to $40, tax 8.25 % on
    /// parts and supplies only.
    fn shop() -> Shop {
        Shop {
            labor_rate: usd(15_000),
            diagnostic_fee: usd(12_000),
            supplies_bp: 1_000,
            supplies_cap: usd(4_000),
            tax_bp: 825,
            tax_labor: false,
        }
    }

    struct Data {
        kb: KnowledgeBase,
        labor: LaborGuide,
        parts: PartsCatalog,
    }

    fn data() -> Data {
        let kb = KnowledgeBase::parse(
            "code,system,severity,description\n\
             P0420,Emissions / catalyst,can_wait,Catalyst below threshold.\n\
             P0301,Engine / ignition,stop_now,Cylinder 1 misfire.\n\
             P0302,Engine / ignition,stop_now,Cylinder 2 misfire.\n",
            "job,name,labor_op,parts,includes\n\
             diagnosis,Diagnose,diag,,Finds it.\n\
             cat,Replace catalytic converter,cat_op,catalyst*1,New converter.\n\
             o2,Replace downstream O2 sensor,o2_op,o2_sensor*1,New sensor.\n\
             plugs,Replace spark plugs,plugs_op,spark_plug*4,New plugs.\n\
             coil,Replace ignition coil,coil_op,coil*1,New coil.\n",
            "code,job,likelihood_pct\n\
             P0420,cat,60\nP0420,o2,40\n\
             P0301,plugs,50\nP0301,coil,50\n\
             P0302,plugs,60\nP0302,coil,40\n",
        )
        .unwrap();
        let labor = LaborGuide::parse(
            "labor.csv",
            "labor_op,name,make,hours_x10\n\
             cat_op,Catalytic converter: replace,*,15\n\
             cat_op,Catalytic converter: replace,Toyota,20\n\
             o2_op,O2 sensor: replace,*,5\n\
             plugs_op,Spark plugs: replace all,*,10\n\
             coil_op,Ignition coil: replace one,*,3\n",
        )
        .unwrap();
        let parts = PartsCatalog::parse(
            "parts.csv",
            "part_number,category,tier,make,description,price_minor,currency\n\
             C1,catalyst,economy,*,Catalyst economy,30000,USD\n\
             C2,catalyst,oe_equivalent,*,Catalyst OE,55000,USD\n\
             C3,catalyst,oem,*,Catalyst OEM,120000,USD\n\
             C4,catalyst,oem,Toyota,Catalyst Toyota,150000,USD\n\
             O1,o2_sensor,economy,*,O2 economy,4000,USD\n\
             O2,o2_sensor,oe_equivalent,*,O2 OE,8000,USD\n\
             O3,o2_sensor,oem,*,O2 OEM,14000,USD\n\
             S1,spark_plug,economy,*,Plug economy,500,USD\n\
             S2,spark_plug,oe_equivalent,*,Plug OE,900,USD\n\
             S3,spark_plug,oem,*,Plug OEM,1400,USD\n\
             K1,coil,economy,*,Coil economy,3000,USD\n\
             K2,coil,oe_equivalent,*,Coil OE,6000,USD\n\
             K3,coil,oem,*,Coil OEM,9000,USD\n",
        )
        .unwrap();
        Data { kb, labor, parts }
    }

    fn book(d: &Data) -> PriceBook<'_> {
        PriceBook {
            knowledge: &d.kb,
            labor: &d.labor,
            parts: &d.parts,
        }
    }

    #[test]
    fn a_catalyst_on_a_toyota_by_hand() {
        let d = data();
        let toyota = Vehicle {
            make: Some("Toyota".into()),
            model_year: Some(2017),
        };
        let q = quote(book(&d), &shop(), &toyota, &["P0420"]).unwrap();
        // Toyota: 2.0 h x $150 = $300.00 labor; supplies 10 % = $30.00.
        // Better: catalyst $550.00; tax 8.25 % of ($550 + $30) = $47.85.
        //   $550 + $300 + $30 + $47.85 = $927.85; plus diagnosis $120 = $1,047.85.
        assert_eq!(q.most_likely, usd(104_785));
        // Low: cheapest economy job. Cat: $300 + $300 + $30 + 8.25 % of $330 ($27.23 after
        //   rounding 27.225 up) = $657.23. O2: 0.5 h = $75 labor, $7.50 supplies, $40 part,
        //   tax 8.25 % of $47.50 = $3.92 (3.91875) -> $126.42. Cheapest: O2. + $120 = $246.42.
        assert_eq!(q.low, usd(24_642));
        // High: dearest OEM job: the Toyota catalyst $1,500 + $300 + $30 + tax on $1,530
        //   ($126.225 -> $126.23) = $1,956.23; + $120 = $2,076.23.
        assert_eq!(q.high, usd(207_623));
        assert_eq!(q.diagnosis, usd(12_000));
        assert_eq!(q.severity, Some(Severity::CanWait));
        assert!(!q.needs_diagnosis);
        let cat = &q.options[0];
        assert_eq!((cat.job.as_str(), cat.likelihood_pct), ("cat", 60));
        let better = cat.price(Tier::OeEquivalent).unwrap();
        assert_eq!(
            (
                better.labor.amount,
                better.supplies,
                better.tax,
                better.total
            ),
            (usd(30_000), usd(3_000), usd(4_785), usd(92_785))
        );
        assert!(
            q.assumptions
                .iter()
                .any(|a| a.starts_with("P0420: the most likely figure assumes replace catalytic converter is the fix (60% of cases); other likely causes: replace downstream o2 sensor (40%)")),
            "{:#?}",
            q.assumptions
        );
    }

    #[test]
    fn two_misfires_share_one_set_of_plugs_and_labor_tax_applies_when_set() {
        let d = data();
        let shop = Shop {
            tax_labor: true,
            ..shop()
        };
        let q = quote(
            book(&d),
            &shop,
            &Vehicle::default(),
            &["P0301", "P0302", "P0301"],
        )
        .unwrap();
        // Diagnosis $120 + 8.25 % = $129.90.
        assert_eq!(q.diagnosis, usd(12_990));
        // Most likely: P0301 -> plugs (first listed at 50 %), P0302 -> plugs: once.
        //   Better plugs 4 x $9 = $36; labor 1.0 h = $150; supplies $15; tax 8.25 % of
        //   ($36 + $15 + $150) = $16.5825 -> $16.58; total $217.58. + $129.90 = $347.48.
        assert_eq!(q.most_likely, usd(34_748));
        // Low: economy coil: $30 + 0.3 h $45 + $4.50 + tax 8.25 % of $79.50 ($6.55875 ->
        //   $6.56) = $86.06, cheaper than plugs for both codes, so one coil counted once...
        //   each code picks the same coil job: $129.90 + $86.06 = $215.96.
        assert_eq!(q.low, usd(21_596));
        // High: OEM plugs 4 x $14 = $56 + $150 + $15 + 8.25 % of $221 ($18.2325 -> $18.23)
        //   = $239.23 vs OEM coil $90 + $45 + $4.50 + 8.25 % of $139.50 ($11.50875 -> $11.51)
        //   = $151.01: plugs, once. $129.90 + $239.23 = $369.13.
        assert_eq!(q.high, usd(36_913));
        assert_eq!(q.severity, Some(Severity::StopNow));
        assert_eq!(q.faults.len(), 2, "the repeated code counts once");
    }

    #[test]
    fn an_unknown_code_needs_diagnosis_and_costs_only_that() {
        let d = data();
        let q = quote(book(&d), &shop(), &Vehicle::default(), &["P1A2B"]).unwrap();
        assert!(q.needs_diagnosis);
        assert_eq!(
            (q.most_likely, q.low, q.high),
            (usd(12_000), usd(12_000), usd(12_000))
        );
        assert_eq!(q.faults[0].description, None);
        assert!(
            q.assumptions
                .iter()
                .any(|a| a.contains("P1A2B is not in our knowledge base"))
        );
        assert_eq!(
            quote(book(&d), &shop(), &Vehicle::default(), &[]),
            Err(PricingError::NoCodes)
        );
    }

    #[test]
    fn a_catalog_without_a_part_says_so_instead_of_guessing() {
        let mut d = data();
        d.parts = PartsCatalog::parse(
            "parts.csv",
            "part_number,category,tier,make,description,price_minor,currency\n\
             O1,o2_sensor,economy,*,O2 economy,4000,USD\n",
        )
        .unwrap();
        let q = quote(book(&d), &shop(), &Vehicle::default(), &["P0420"]).unwrap();
        assert!(q.needs_diagnosis, "nothing priceable in the 'better' tier");
        assert_eq!(q.most_likely, usd(12_000));
        let cat = &q.options[0];
        assert!(cat.tiers.is_empty());
        assert_eq!(cat.missing[0], "no catalyst part in the Economy tier");
        // The O2 sensor is priceable in economy: the low end uses it.
        assert_eq!(q.low, usd(24_642));
    }

    #[test]
    fn the_shipped_data_prices_every_simulator_code() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let kb = KnowledgeBase::load(&root.join("diagnostics")).unwrap_or_else(|e| panic!("{e}"));
        let read = |f: &str| std::fs::read_to_string(root.join("catalog").join(f)).unwrap();
        let labor = LaborGuide::parse("labor.csv", &read("labor.csv")).unwrap();
        let parts = PartsCatalog::parse("parts.csv", &read("parts.csv")).unwrap();
        let book = PriceBook {
            knowledge: &kb,
            labor: &labor,
            parts: &parts,
        };
        for code in [
            "P0128", "P0171", "P0300", "P0301", "P0420", "P0442", "P0455", "P0456", "P0715",
            "P0741", "P0A7F", "P0A80", "P0AFA", "U0100", "U0101",
        ] {
            let q = quote(book, &shop(), &Vehicle::default(), &[code]).unwrap();
            assert!(!q.needs_diagnosis, "{code}: {:?}", q.options);
            assert!(
                q.low.minor <= q.most_likely.minor && q.most_likely.minor <= q.high.minor,
                "{code}: {} / {} / {}",
                q.low,
                q.most_likely,
                q.high
            );
            assert!(q.most_likely.minor > q.diagnosis.minor, "{code}");
            for o in &q.options {
                for t in &o.tiers {
                    let parts: i64 = t.parts.iter().map(|l| l.amount.minor).sum();
                    assert_eq!(
                        t.total.minor,
                        parts + t.labor.amount.minor + t.supplies.minor + t.tax.minor,
                        "{code} {}",
                        o.job
                    );
                }
            }
        }
    }
}
