//! Do-not-call lists: global, and per enterprise.
//!
//! A number on the global list is never called for anyone; a number on an
//! enterprise's list is never called for that enterprise. Entries come from
//! revocations (added in the same transaction as the revocation) and from
//! CSV imports, whose parsing lives here so that the report of accepted and
//! rejected rows can be tested without a database.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};

use super::{NumberError, Region, E164};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncEntry {
    pub number: E164,
    /// `None`: the global list.
    pub enterprise_id: Option<String>,
    /// Where the entry came from: `revocation`, `import`, `manual`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

/// Why a CSV row was not added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DncRejectionReason {
    InvalidNumber(NumberError),
    /// The same number appeared on an earlier row of the file.
    DuplicateInFile {
        first_line: usize,
    },
    /// The number was already on the list before the import.
    AlreadyListed,
}

impl DncRejectionReason {
    /// Stable identifier for scripts reading the report.
    pub fn code(&self) -> &'static str {
        match self {
            DncRejectionReason::InvalidNumber(_) => "invalid_number",
            DncRejectionReason::DuplicateInFile { .. } => "duplicate",
            DncRejectionReason::AlreadyListed => "already_listed",
        }
    }
}

impl fmt::Display for DncRejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DncRejectionReason::InvalidNumber(e) => write!(f, "invalid number: {e}"),
            DncRejectionReason::DuplicateInFile { first_line } => {
                write!(f, "duplicate of line {first_line}")
            }
            DncRejectionReason::AlreadyListed => f.write_str("already on the list"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DncRejection {
    /// 1-based line number in the file.
    pub line: usize,
    pub input: String,
    pub reason: DncRejectionReason,
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DncImportReport {
    /// Numbers added, in file order.
    pub accepted: Vec<E164>,
    pub rejected: Vec<DncRejection>,
}

impl fmt::Display for DncImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} accepted, {} rejected",
            self.accepted.len(),
            self.rejected.len()
        )?;
        for r in &self.rejected {
            writeln!(
                f,
                "line {}: {:?}: {} ({})",
                r.line,
                r.input,
                r.reason,
                r.reason.code()
            )?;
        }
        Ok(())
    }
}

/// A CSV file read and checked, before it meets the database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedDncCsv {
    /// Distinct valid numbers with their line numbers.
    pub numbers: Vec<(usize, String, E164)>,
    pub rejected: Vec<DncRejection>,
}

/// Reads a do-not-call CSV: the number is the first column; other columns
/// (names, notes) are ignored. Blank lines, `#` comments and a header row
/// (a first cell without any digit, e.g. `number`) are skipped. National
/// numbers are read in `region`; without one, only international numbers
/// are accepted.
pub fn parse_csv(text: &str, region: Option<Region>) -> ParsedDncCsv {
    let mut parsed = ParsedDncCsv::default();
    // Each number's first line, to point duplicates at it.
    let mut first_line_of: HashMap<E164, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let cell = first_cell(line);
        if cell.is_empty() || cell.starts_with('#') {
            continue;
        }
        if line_no == 1 && !cell.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        match E164::parse(&cell, region) {
            Ok(number) => match first_line_of.get(&number) {
                Some(&first_line) => parsed.rejected.push(DncRejection {
                    line: line_no,
                    input: cell,
                    reason: DncRejectionReason::DuplicateInFile { first_line },
                }),
                None => {
                    first_line_of.insert(number.clone(), line_no);
                    parsed.numbers.push((line_no, cell, number));
                }
            },
            Err(e) => parsed.rejected.push(DncRejection {
                line: line_no,
                input: cell,
                reason: DncRejectionReason::InvalidNumber(e),
            }),
        }
    }
    parsed
}

/// The first CSV field, unquoted. Numbers never contain commas, so a quoted
/// field only needs its quotes removed (and `""` collapsed).
fn first_cell(line: &str) -> String {
    let line = line.trim_start_matches('\u{feff}').trim();
    if let Some(rest) = line.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out.trim().to_string();
    }
    line.split([',', ';'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reports_each_row() {
        let csv = "\u{feff}number,name\n\
                   06 12 34 56 78,Ann\n\
                   \"+33 6 12 34 56 78\",Ann again\n\
                   \n\
                   # a comment\n\
                   not a number\n\
                   +1 202 555 0143;Bob\n";
        let parsed = parse_csv(csv, Some("FR".parse().unwrap()));
        let numbers: Vec<_> = parsed
            .numbers
            .iter()
            .map(|(l, _, n)| (*l, n.as_str()))
            .collect();
        assert_eq!(numbers, vec![(2, "+33612345678"), (7, "+12025550143")]);
        assert_eq!(parsed.rejected.len(), 2);
        assert_eq!(parsed.rejected[0].line, 3);
        assert_eq!(
            parsed.rejected[0].reason,
            DncRejectionReason::DuplicateInFile { first_line: 2 }
        );
        assert_eq!(parsed.rejected[1].reason.code(), "invalid_number");
    }

    #[test]
    fn without_a_region_national_numbers_are_rejected() {
        let parsed = parse_csv("0612345678\n+33612345678\n", None);
        assert_eq!(parsed.numbers.len(), 1);
        assert_eq!(parsed.rejected[0].line, 1);
    }
}
