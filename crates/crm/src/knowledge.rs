//! The diagnostics knowledge base: what each trouble code means to an owner, how urgent it is,
//! and which repair jobs it probably needs (`data/diagnostics/*.csv`, see `data/README.md`).
//! Loaded once at start; refused whole, with every bad row named, when any row is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::csvrows::{self, DataErrors, RowError};

/// How urgent a fault is, in the owner's terms. Ordered from least to most urgent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    CanWait,
    ServiceSoon,
    StopNow,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "can_wait" => Some(Severity::CanWait),
            "service_soon" => Some(Severity::ServiceSoon),
            "stop_now" => Some(Severity::StopNow),
            _ => None,
        }
    }

    /// How an owner reads it.
    pub fn words(self) -> &'static str {
        match self {
            Severity::CanWait => "Can wait until your next service",
            Severity::ServiceSoon => "Book a visit soon",
            Severity::StopNow => "Stop driving: have it looked at before you drive on",
        }
    }
}

/// One trouble code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeInfo {
    pub code: String,
    pub system: String,
    pub severity: Severity,
    /// For the owner: what it means and what they may notice.
    pub description: String,
}

/// A repair job a code can lead to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// The labor guide's operation for it.
    pub labor_op: String,
    /// Part categories and quantities.
    pub parts: Vec<(String, u32)>,
    /// What the owner gets, in one sentence.
    pub includes: String,
}

/// A probable job for a code, with its likelihood in percent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Likely {
    pub job: String,
    pub likelihood_pct: u8,
}

/// The job every unknown code gets, and that confirms any other before work starts.
pub const DIAGNOSIS: &str = "diagnosis";

#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    codes: BTreeMap<String, CodeInfo>,
    jobs: BTreeMap<String, Job>,
    /// Per code, most likely first.
    likely: BTreeMap<String, Vec<Likely>>,
}

impl KnowledgeBase {
    /// Loads `dir/codes.csv`, `dir/jobs.csv` and `dir/code_jobs.csv`.
    pub fn load(dir: &Path) -> Result<KnowledgeBase, DataErrors> {
        let read = |name: &str| csvrows::read_file(&dir.join(name));
        KnowledgeBase::parse(
            &read("codes.csv")?,
            &read("jobs.csv")?,
            &read("code_jobs.csv")?,
        )
    }

    /// Parses the three files' contents; every error of every file, or the knowledge base.
    pub fn parse(codes: &str, jobs: &str, code_jobs: &str) -> Result<KnowledgeBase, DataErrors> {
        let mut kb = KnowledgeBase::default();
        let mut errors = Vec::new();
        let r = csvrows::read(
            "codes.csv",
            codes,
            &["code", "system", "severity", "description"],
            |row| {
                let code = row.required("code")?;
                if !is_code(code) {
                    return Err(format!("{code:?} is not a trouble code like P0420"));
                }
                let severity = row.get("severity");
                let severity = Severity::parse(severity).ok_or_else(|| {
                    format!("severity {severity:?}: use stop_now, service_soon or can_wait")
                })?;
                let info = CodeInfo {
                    code: code.to_owned(),
                    system: row.required("system")?.to_owned(),
                    severity,
                    description: row.required("description")?.to_owned(),
                };
                if kb.codes.insert(code.to_owned(), info).is_some() {
                    return Err(format!("{code} appears twice"));
                }
                Ok(())
            },
        );
        errors.extend(r.err().unwrap_or_default());
        let r = csvrows::read(
            "jobs.csv",
            jobs,
            &["job", "name", "labor_op", "parts", "includes"],
            |row| {
                let id = row.required("job")?;
                let mut parts = Vec::new();
                for item in row.get("parts").split(';').filter(|p| !p.trim().is_empty()) {
                    let (category, qty) = item
                        .trim()
                        .split_once('*')
                        .ok_or_else(|| format!("part {item:?}: write category*quantity"))?;
                    let qty: u32 = qty.parse().ok().filter(|q| *q > 0).ok_or_else(|| {
                        format!("part {item:?}: the quantity is not a whole number")
                    })?;
                    parts.push((category.to_owned(), qty));
                }
                let job = Job {
                    id: id.to_owned(),
                    name: row.required("name")?.to_owned(),
                    labor_op: row.required("labor_op")?.to_owned(),
                    parts,
                    includes: row.required("includes")?.to_owned(),
                };
                if kb.jobs.insert(id.to_owned(), job).is_some() {
                    return Err(format!("job {id} appears twice"));
                }
                Ok(())
            },
        );
        errors.extend(r.err().unwrap_or_default());
        let r = csvrows::read(
            "code_jobs.csv",
            code_jobs,
            &["code", "job", "likelihood_pct"],
            |row| {
                let code = row.required("code")?;
                let job = row.required("job")?;
                let pct: u8 = row.integer("likelihood_pct")?;
                if !kb.codes.contains_key(code) {
                    return Err(format!("code {code} is not in codes.csv"));
                }
                if !kb.jobs.contains_key(job) {
                    return Err(format!("job {job} is not in jobs.csv"));
                }
                let list = kb.likely.entry(code.to_owned()).or_default();
                let total: u32 = list.iter().map(|l| u32::from(l.likelihood_pct)).sum();
                if total + u32::from(pct) > 100 {
                    return Err(format!("the likelihoods of {code} add up to more than 100"));
                }
                if list.iter().any(|l| l.job == job) {
                    return Err(format!("{code} lists {job} twice"));
                }
                list.push(Likely {
                    job: job.to_owned(),
                    likelihood_pct: pct,
                });
                Ok(())
            },
        );
        errors.extend(r.err().unwrap_or_default());
        if !kb.jobs.contains_key(DIAGNOSIS) {
            errors.push(RowError {
                file: "jobs.csv".into(),
                line: 0,
                message: format!("the {DIAGNOSIS:?} job is missing (unknown codes need it)"),
            });
        }
        if !errors.is_empty() {
            return Err(DataErrors(errors));
        }
        for list in kb.likely.values_mut() {
            list.sort_by_key(|l| std::cmp::Reverse(l.likelihood_pct));
        }
        Ok(kb)
    }

    pub fn code(&self, code: &str) -> Option<&CodeInfo> {
        self.codes.get(code)
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// The probable jobs for a known code, most likely first; for an unknown one, diagnosis.
    pub fn probable_jobs(&self, code: &str) -> Vec<Likely> {
        match self.likely.get(code) {
            Some(list) if !list.is_empty() => list.clone(),
            _ => vec![Likely {
                job: DIAGNOSIS.to_owned(),
                likelihood_pct: 100,
            }],
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// `P0420`, `C0035`, `B0001`, `U0100`, `P0A80`: a letter and four hex digits.
pub fn is_code(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 5
        && matches!(b[0], b'P' | b'C' | b'B' | b'U')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_data() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/diagnostics")
    }

    #[test]
    fn the_shipped_knowledge_base_loads_and_covers_the_simulator() {
        let kb = KnowledgeBase::load(&repo_data()).unwrap_or_else(|e| panic!("{e}"));
        assert!(kb.len() >= 300, "{} codes", kb.len());
        for code in [
            "P0128", "P0171", "P0300", "P0301", "P0302", "P0303", "P0304", "P0420", "P0442",
            "P0455", "P0456", "P0715", "P0741", "P0A7F", "P0A80", "P0AFA", "U0100", "U0101",
        ] {
            assert!(kb.code(code).is_some(), "{code} missing");
        }
        let p0420 = kb.probable_jobs("P0420");
        assert_eq!(p0420[0].job, "replace_catalytic_converter");
        assert!(
            p0420
                .windows(2)
                .all(|w| w[0].likelihood_pct >= w[1].likelihood_pct)
        );
        assert_eq!(kb.probable_jobs("P1234")[0].job, DIAGNOSIS, "unknown code");
    }

    #[test]
    fn bad_rows_in_every_file_are_all_reported() {
        let codes = "code,system,severity,description\nP0420,Emissions,can_wait,Cat.\nX1,Y,z,w\nP0420,E,soon,again\n";
        let jobs = "job,name,labor_op,parts,includes\ndiagnosis,Diagnose,diag,,Finds it.\ncat,Cat,cat_op,catalyst*x,New cat.\n";
        let code_jobs =
            "code,job,likelihood_pct\nP0420,diagnosis,60\nP0420,nope,10\nP0420,diagnosis,50\n";
        let e = KnowledgeBase::parse(codes, jobs, code_jobs).unwrap_err();
        let shown = e.to_string();
        for want in [
            "codes.csv:3: \"X1\" is not a trouble code",
            "codes.csv:4: severity \"soon\"",
            "jobs.csv:3: part \"catalyst*x\"",
            "code_jobs.csv:3: job nope is not in jobs.csv",
            "code_jobs.csv:4: the likelihoods of P0420 add up to more than 100",
        ] {
            assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
        }
    }

    #[test]
    fn codes_are_letter_and_four_hex_digits() {
        assert!(is_code("P0420") && is_code("P0A7F") && is_code("U0100"));
        assert!(!is_code("P042") && !is_code("X0420") && !is_code("p0420") && !is_code("P0g20"));
    }
}
