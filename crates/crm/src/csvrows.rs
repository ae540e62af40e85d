//! Reading the CRM's CSV files (the knowledge base, a shop's labor guide and parts catalog):
//! the header must be exactly the expected columns, every row is checked, and every bad row
//! is reported with its line number. A file with any bad row is refused whole, so nothing is
//! half-imported.

use std::fmt;

/// One problem in one file, at one line (1-based; the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Every problem found in a set of files; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DataErrors(pub Vec<RowError>);

impl fmt::Display for DataErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A row's fields by column position, and the helpers that turn them into values.
#[derive(Debug)]
pub struct Row<'r> {
    record: &'r csv::StringRecord,
    columns: &'r [&'r str],
}

impl Row<'_> {
    /// The field of `column` (one of the expected columns), trimmed.
    pub fn get(&self, column: &str) -> &str {
        self.columns
            .iter()
            .position(|c| *c == column)
            .and_then(|i| self.record.get(i))
            .map_or("", str::trim)
    }

    /// A field that must not be empty.
    pub fn required(&self, column: &str) -> Result<&str, String> {
        match self.get(column) {
            "" => Err(format!("{column} is empty")),
            v => Ok(v),
        }
    }

    /// A non-negative integer field (money in minor units, tenths of hours, quantities).
    pub fn integer<T: std::str::FromStr>(&self, column: &str) -> Result<T, String> {
        let v = self.required(column)?;
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{column} {v:?} is not a whole number (money in minor units, hours in tenths)"
            ));
        }
        v.parse()
            .map_err(|_| format!("{column} {v:?} is out of range"))
    }
}

/// The 1-based line of the first character at or after `byte` that is not a line break (the
/// csv crate counts a record from the blank lines before it).
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut at = usize::try_from(byte)
        .unwrap_or(bytes.len())
        .min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|b| **b == b'\n').count() as u64
}

/// A data file's text, or a [`DataErrors`] naming the file when it cannot be read.
pub fn read_file(path: &std::path::Path) -> Result<String, DataErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        DataErrors(vec![RowError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        }])
    })
}

/// Reads `text` (the content of `file`) whose header must be `columns`, calling `each` per
/// row. Returns every error, or none.
pub fn read(
    file: &str,
    text: &str,
    columns: &[&str],
    mut each: impl FnMut(&Row<'_>) -> Result<(), String>,
) -> Result<(), Vec<RowError>> {
    let error = |line: u64, message: String| RowError {
        file: file.to_owned(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(vec![error(1, format!("unreadable header: {e}"))]),
    };
    let found: Vec<&str> = header.iter().map(str::trim).collect();
    if found != columns {
        return Err(vec![error(
            1,
            format!(
                "the header must be {:?}, found {:?}",
                columns.join(","),
                found.join(",")
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| line_at(text, p.byte()));
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                if record.len() != columns.len() {
                    errors.push(error(
                        line,
                        format!("{} fields, expected {}", record.len(), columns.len()),
                    ));
                    continue;
                }
                let row = Row {
                    record: &record,
                    columns,
                };
                if let Err(message) = each(&row) {
                    errors.push(error(line, message));
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(error(line, format!("not CSV: {e}")));
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_row_is_named_by_its_line() {
        let text = "a,b\n1,2\nx,3\n\n4\n5,\"6,6\"\n7,-1\n";
        let mut sum = 0u32;
        let r = read("t.csv", text, &["a", "b"], |row| {
            let a: u32 = row.integer("a")?;
            let b: u32 = row.integer("b")?;
            sum += a + b;
            Ok(())
        });
        let errors = r.unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "t.csv:3: a \"x\" is not a whole number (money in minor units, hours in tenths)",
                "t.csv:5: 1 fields, expected 2",
                "t.csv:6: b \"6,6\" is not a whole number (money in minor units, hours in tenths)",
                "t.csv:7: b \"-1\" is not a whole number (money in minor units, hours in tenths)",
            ]
        );
    }

    #[test]
    fn the_header_must_match() {
        let e = read("t.csv", "b,a\n1,2\n", &["a", "b"], |_| Ok(())).unwrap_err();
        assert_eq!(e[0].line, 1);
        assert!(e[0].message.contains("must be \"a,b\""), "{}", e[0]);
        assert!(read("t.csv", "\u{feff}a,b\n1,2\n", &["a", "b"], |_| Ok(())).is_ok());
    }
}
