use std::fmt;

use serde::Serialize;

/// Characters of a reason the report keeps (a driver's reason can be megabytes).
pub const MAX_REASON: usize = 500;

/// `text` as the report prints it: at most [`MAX_REASON`] characters, then how much was cut;
/// control characters escaped, so a driver cannot write terminal escapes through the kit.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for (count, (at, c)) in text.char_indices().enumerate() {
        if count == MAX_REASON {
            out.push_str(&format!("... ({} more bytes)", text.len() - at));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "why", rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub component: String,
    /// `name version`, once the component loaded.
    pub driver: Option<String>,
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Records a case; what a driver put in its reason is cut to [`MAX_REASON`] characters and
    /// its control characters (terminal escapes) shown escaped.
    pub fn record(&mut self, case: impl Into<String>, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Pass => Outcome::Pass,
            Outcome::Fail(why) => Outcome::Fail(printable(&why)),
            Outcome::Skip(why) => Outcome::Skip(printable(&why)),
        };
        self.cases.push(CaseResult {
            case: printable(&case.into()),
            outcome,
        });
    }

    pub fn count(&self, which: fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| which(&c.outcome)).count()
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }

    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }

    /// True when no case failed and at least one ran.
    pub fn ok(&self) -> bool {
        self.failed() == 0 && self.passed() > 0
    }

    /// The outcome of the first case whose name starts with `prefix`.
    pub fn outcome(&self, prefix: &str) -> Option<&Outcome> {
        self.cases
            .iter()
            .find(|c| c.case.starts_with(prefix))
            .map(|c| &c.outcome)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.component)?;
        if let Some(d) = &self.driver {
            writeln!(f, "driver {d}")?;
        }
        for c in &self.cases {
            match &c.outcome {
                Outcome::Pass => writeln!(f, "  PASS  {}", c.case)?,
                Outcome::Fail(why) => writeln!(f, "  FAIL  {}: {why}", c.case)?,
                Outcome::Skip(why) => writeln!(f, "  SKIP  {} ({why})", c.case)?,
            }
        }
        write!(
            f,
            "cases: {} passed, {} failed, {} skipped",
            self.passed(),
            self.failed(),
            self.skipped()
        )
    }
}
