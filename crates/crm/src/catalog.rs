//! The shop's price data: the labor guide (hours per operation, per make where it differs)
//! and the parts catalog (good / better / best tiers). Both come from CSV, as shops keep them
//! in spreadsheets: `data/catalog/*.csv` is the sample, `telltale-crm import` reads a shop's
//! own. A file with any bad row is refused whole, every bad row named by its line.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::csvrows::{self, DataErrors};
use crate::money::{Currency, Money};

/// `*` in a `make` column: any make.
pub const ANY_MAKE: &str = "*";

/// A part's quality tier, the owner's good / better / best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Good: an economy aftermarket part.
    Economy,
    /// Better: an aftermarket part made to the original's specification.
    OeEquivalent,
    /// Best: the carmaker's own part.
    Oem,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Economy, Tier::OeEquivalent, Tier::Oem];

    pub fn parse(text: &str) -> Option<Tier> {
        match text {
            "economy" => Some(Tier::Economy),
            "oe_equivalent" => Some(Tier::OeEquivalent),
            "oem" => Some(Tier::Oem),
            _ => None,
        }
    }

    /// How an owner reads it.
    pub fn words(self) -> &'static str {
        match self {
            Tier::Economy => "Good (economy parts)",
            Tier::OeEquivalent => "Better (parts made to the original specification)",
            Tier::Oem => "Best (the carmaker's own parts)",
        }
    }
}

/// One labor guide row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaborTime {
    pub op: String,
    pub name: String,
    /// A make, or [`ANY_MAKE`].
    pub make: String,
    pub hours_x10: u32,
}

#[derive(Debug, Clone, Default)]
pub struct LaborGuide {
    ops: BTreeMap<String, Vec<LaborTime>>,
}

impl LaborGuide {
    /// Parses a labor guide CSV (`labor_op,name,make,hours_x10`).
    pub fn parse(file: &str, text: &str) -> Result<LaborGuide, DataErrors> {
        let mut guide = LaborGuide::default();
        csvrows::read(
            file,
            text,
            &["labor_op", "name", "make", "hours_x10"],
            |row| {
                let t = LaborTime {
                    op: row.required("labor_op")?.to_owned(),
                    name: row.required("name")?.to_owned(),
                    make: row.required("make")?.to_owned(),
                    hours_x10: row.integer("hours_x10")?,
                };
                let list = guide.ops.entry(t.op.clone()).or_default();
                if list.iter().any(|x| x.make.eq_ignore_ascii_case(&t.make)) {
                    return Err(format!("{} for {} appears twice", t.op, t.make));
                }
                list.push(t);
                Ok(())
            },
        )
        .map_err(DataErrors)?;
        Ok(guide)
    }

    /// Every row, by operation.
    pub fn times(&self) -> impl Iterator<Item = &LaborTime> {
        self.ops.values().flatten()
    }

    /// The time for `op` on `make`: the make's own row, else the generic one.
    pub fn time(&self, op: &str, make: Option<&str>) -> Option<&LaborTime> {
        let rows = self.ops.get(op)?;
        make.and_then(|m| rows.iter().find(|r| r.make.eq_ignore_ascii_case(m)))
            .or_else(|| rows.iter().find(|r| r.make == ANY_MAKE))
    }

    pub fn len(&self) -> usize {
        self.ops.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One catalog part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    pub part_number: String,
    pub category: String,
    pub tier: Tier,
    /// A make, or [`ANY_MAKE`].
    pub make: String,
    pub description: String,
    pub price: Money,
}

#[derive(Debug, Clone, Default)]
pub struct PartsCatalog {
    by_category: BTreeMap<String, Vec<Part>>,
}

impl PartsCatalog {
    /// Parses a parts CSV
    /// (`part_number,category,tier,make,description,price_minor,currency`).
    pub fn parse(file: &str, text: &str) -> Result<PartsCatalog, DataErrors> {
        let mut catalog = PartsCatalog::default();
        let mut numbers = std::collections::HashSet::new();
        let columns = [
            "part_number",
            "category",
            "tier",
            "make",
            "description",
            "price_minor",
            "currency",
        ];
        csvrows::read(file, text, &columns, |row| {
            let tier = row.get("tier");
            let tier = Tier::parse(tier)
                .ok_or_else(|| format!("tier {tier:?}: use economy, oe_equivalent or oem"))?;
            let currency = Currency::parse(row.get("currency")).map_err(|e| e.to_string())?;
            let part = Part {
                part_number: row.required("part_number")?.to_owned(),
                category: row.required("category")?.to_owned(),
                tier,
                make: row.required("make")?.to_owned(),
                description: row.required("description")?.to_owned(),
                price: Money::new(row.integer("price_minor")?, currency),
            };
            if !numbers.insert(part.part_number.clone()) {
                return Err(format!("part number {} appears twice", part.part_number));
            }
            catalog
                .by_category
                .entry(part.category.clone())
                .or_default()
                .push(part);
            Ok(())
        })
        .map_err(DataErrors)?;
        Ok(catalog)
    }

    /// Every part, by category.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.by_category.values().flatten()
    }

    /// The part to quote for `category` in `tier` on `make`: the cheapest made for the make,
    /// else the cheapest generic one.
    pub fn pick(&self, category: &str, tier: Tier, make: Option<&str>) -> Option<&Part> {
        let parts = self.by_category.get(category)?;
        let cheapest = |for_make: &dyn Fn(&Part) -> bool| {
            parts
                .iter()
                .filter(|p| p.tier == tier && for_make(p))
                .min_by_key(|p| p.price.minor)
        };
        make.and_then(|m| cheapest(&|p: &Part| p.make.eq_ignore_ascii_case(m)))
            .or_else(|| cheapest(&|p: &Part| p.make == ANY_MAKE))
    }

    pub fn len(&self) -> usize {
        self.by_category.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_category.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/catalog")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_sample_catalog_loads() {
        let labor =
            LaborGuide::parse("labor.csv", &read("labor.csv")).unwrap_or_else(|e| panic!("{e}"));
        let parts =
            PartsCatalog::parse("parts.csv", &read("parts.csv")).unwrap_or_else(|e| panic!("{e}"));
        assert!(labor.len() > 50 && parts.len() > 100);
    }

    #[test]
    fn make_rows_win_over_generic_ones() {
        let labor = LaborGuide::parse(
            "l.csv",
            "labor_op,name,make,hours_x10\nplugs,Plugs,*,10\nplugs,Plugs,Ford,25\n",
        )
        .unwrap();
        assert_eq!(
            labor.time("plugs", Some("ford")).map(|t| t.hours_x10),
            Some(25)
        );
        assert_eq!(
            labor.time("plugs", Some("Honda")).map(|t| t.hours_x10),
            Some(10)
        );
        assert_eq!(labor.time("plugs", None).map(|t| t.hours_x10), Some(10));
        assert!(labor.time("nope", None).is_none());
        let parts = PartsCatalog::parse(
            "p.csv",
            "part_number,category,tier,make,description,price_minor,currency\n\
             A,plug,oem,*,Generic,900,USD\nB,plug,oem,Ford,Ford,1500,USD\nC,plug,oem,*,Dearer,1200,USD\n",
        )
        .unwrap();
        assert_eq!(
            parts
                .pick("plug", Tier::Oem, Some("Ford"))
                .map(|p| p.part_number.as_str()),
            Some("B")
        );
        assert_eq!(
            parts
                .pick("plug", Tier::Oem, Some("Kia"))
                .map(|p| p.part_number.as_str()),
            Some("A")
        );
        assert!(parts.pick("plug", Tier::Economy, None).is_none());
    }

    #[test]
    fn a_bad_catalog_is_refused_whole_with_every_line() {
        let e = PartsCatalog::parse(
            "p.csv",
            "part_number,category,tier,make,description,price_minor,currency\n\
             A,plug,oem,*,Fine,900,USD\nB,plug,best,*,Bad tier,900,USD\nC,plug,oem,*,Float,9.99,USD\nA,plug,oem,*,Again,900,usd\n",
        )
        .unwrap_err();
        let lines: Vec<u64> = e.0.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5], "{e}");
    }
}
