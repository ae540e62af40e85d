//! From a VIN to what the pricing needs: the make (from the World Manufacturer Identifier,
//! `data/vehicles/wmi.csv`) and the model year (position 10, read by `telltale_obd::vin`).
//! An unknown WMI or a VIN that does not parse leaves the make unknown: the quote then uses
//! the generic labor times and parts, which it says.

use std::collections::BTreeMap;

use telltale_obd::vin::Vin;

use crate::csvrows::{self, DataErrors};
use crate::pricing::Vehicle;

/// Makes by WMI.
#[derive(Debug, Clone, Default)]
pub struct Makes {
    by_wmi: BTreeMap<String, String>,
}

impl Makes {
    /// Parses a `wmi,make` CSV.
    pub fn parse(file: &str, text: &str) -> Result<Makes, DataErrors> {
        let mut makes = Makes::default();
        csvrows::read(file, text, &["wmi", "make"], |row| {
            let wmi = row.required("wmi")?;
            if wmi.len() != 3
                || !wmi
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                return Err(format!("wmi {wmi:?}: three capital letters or digits"));
            }
            let make = row.required("make")?.to_owned();
            if makes.by_wmi.insert(wmi.to_owned(), make).is_some() {
                return Err(format!("wmi {wmi} appears twice"));
            }
            Ok(())
        })
        .map_err(DataErrors)?;
        Ok(makes)
    }

    /// The vehicle a VIN names. `this_year` settles the model year where position 10 stands
    /// for two years 30 apart and the VIN is not North American (whose position 7 settles it):
    /// the later one unless it lies beyond next year.
    pub fn vehicle(&self, vin: &str, this_year: u16) -> Vehicle {
        let Ok(vin) = Vin::parse(vin) else {
            return Vehicle::default();
        };
        let make = self.by_wmi.get(vin.wmi()).cloned();
        let model_year = vin.model_year().map(|y| {
            y.likely.unwrap_or(if y.candidates[1] <= this_year + 1 {
                y.candidates[1]
            } else {
                y.candidates[0]
            })
        });
        Vehicle { make, model_year }
    }

    pub fn len(&self) -> usize {
        self.by_wmi.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_wmi.is_empty()
    }
}

/// A VIN as a caller sent it, trimmed and upper-cased; refused unless it is 1 to 17 letters and
/// digits (older and non-US vehicles have shorter identifiers, so 17 is not required).
pub fn vin(text: &str) -> Result<String, String> {
    let vin = text.trim().to_ascii_uppercase();
    if vin.is_empty() || vin.len() > 17 || !vin.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "vin {text:?} is not a VIN (1 to 17 letters and digits)"
        ));
    }
    Ok(vin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Makes {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/vehicles/wmi.csv");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Makes::parse("wmi.csv", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_simulator_vin_has_its_make_and_year() {
        let makes = shipped();
        // The scenarios' VINs, makes and years (firmware-sim/scenarios/*.toml).
        for (vin, make, year) in [
            ("JTDKARFU1H3541802", "Toyota", 2017),
            ("1G1ZD5ST5LF093561", "Chevrolet", 2020),
            ("2HGFC2F58JH512345", "Honda", 2018),
            ("JTDKAMFU3M3128745", "Toyota", 2021),
            ("3VWC57BU6KM104822", "Volkswagen", 2019),
            ("1FMCU9GD4KUA37218", "Ford", 2019),
            ("5NPE34AF6GH287414", "Hyundai", 2016),
        ] {
            let v = makes.vehicle(vin, 2026);
            assert_eq!(
                (v.make.as_deref(), v.model_year),
                (Some(make), Some(year)),
                "{vin}"
            );
        }
    }

    #[test]
    fn unknown_or_broken_vins_leave_the_make_unknown() {
        let makes = shipped();
        assert_eq!(makes.vehicle("not a vin", 2026), Vehicle::default());
        let v = makes.vehicle("XXXZZZ1JZXW000001", 2026);
        assert_eq!(v.make, None);
        // A European VIN: position 10 `X` is 1999 or 2029; in 2026 the later is too new.
        assert_eq!(
            makes.vehicle("WVWZZZ1JZXW000001", 2026).model_year,
            Some(1999)
        );
        let e = Makes::parse("w.csv", "wmi,make\nJT,Toyota\nJTD,Toyota\nJTD,Lexus\n").unwrap_err();
        let lines: Vec<u64> = e.0.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
    }
}
