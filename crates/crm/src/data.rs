//! The reference data the CRM prices with: the knowledge base, the VIN makes table and the
//! default parts catalog and labor guide. The files under `data/` are built into the binary,
//! so `telltale-crm serve` works from any directory; `--data-dir` points at an edited copy.

use std::path::Path;

use crate::catalog::{LaborGuide, PartsCatalog};
use crate::csvrows::DataErrors;
use crate::knowledge::KnowledgeBase;
use crate::vehicle::Makes;

const CODES: &str = include_str!("../../../data/diagnostics/codes.csv");
const JOBS: &str = include_str!("../../../data/diagnostics/jobs.csv");
const CODE_JOBS: &str = include_str!("../../../data/diagnostics/code_jobs.csv");
const WMI: &str = include_str!("../../../data/vehicles/wmi.csv");
pub const PARTS: &str = include_str!("../../../data/catalog/parts.csv");
pub const LABOR: &str = include_str!("../../../data/catalog/labor.csv");

#[derive(Debug)]
pub struct Data {
    pub knowledge: KnowledgeBase,
    pub makes: Makes,
    /// Used by a tenant that has not imported its own.
    pub parts: PartsCatalog,
    pub labor: LaborGuide,
}

impl Data {
    /// The data built into the binary, or the files under `dir` (the same layout as `data/`).
    pub fn load(dir: Option<&Path>) -> Result<Data, DataErrors> {
        let read = |name: &str, shipped: &'static str| -> Result<String, DataErrors> {
            let Some(dir) = dir else {
                return Ok(shipped.to_owned());
            };
            crate::csvrows::read_file(&dir.join(name))
        };
        Ok(Data {
            knowledge: KnowledgeBase::parse(
                &read("diagnostics/codes.csv", CODES)?,
                &read("diagnostics/jobs.csv", JOBS)?,
                &read("diagnostics/code_jobs.csv", CODE_JOBS)?,
            )?,
            makes: Makes::parse("vehicles/wmi.csv", &read("vehicles/wmi.csv", WMI)?)?,
            parts: PartsCatalog::parse("catalog/parts.csv", &read("catalog/parts.csv", PARTS)?)?,
            labor: LaborGuide::parse("catalog/labor.csv", &read("catalog/labor.csv", LABOR)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_data_loads() {
        let data = Data::load(None).unwrap();
        assert!(data.knowledge.len() >= 400);
        assert!(!data.parts.is_empty() && !data.labor.is_empty() && !data.makes.is_empty());
    }
}
