//! stub
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
pub struct AmdSettings {}
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub verdict: Verdict,
    pub after_ms: u64,
    pub why: &'static str,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Person,
    Machine,
}
impl AmdSettings { pub fn validate(&self) -> Result<(), std::fmt::Error> { Ok(()) } }
