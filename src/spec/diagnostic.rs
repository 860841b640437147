//! Spec errors as miette diagnostics: what is wrong, where (file, line, column, a label on the
//! offending text), and a help line saying what to do.
//!
//! Every problem found in a spec becomes one [`SpecError`]; loading returns all of them at once as
//! [`SpecErrors`]. The CLI renders them; tests snapshot the rendering.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use super::yaml::ByteSpan;

/// What kind of problem, for matching in code; the message says it for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecErrorKind {
    /// The file could not be read.
    Read,
    /// The file is larger than any sensible spec.
    TooLarge,
    /// The file is not UTF-8 text.
    NotText,
    /// The text is not valid YAML (or uses YAML features a spec cannot).
    Syntax,
    /// The document is empty.
    Empty,
    /// A key the spec does not know.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong type.
    WrongType,
    /// A number outside its allowed range, or a list too short.
    OutOfRange,
    /// A string that does not have the required form (names, durations, addresses).
    BadValue,
    /// The same region listed twice in one cloud, or the same instance type twice.
    Duplicate,
    /// Values that contradict each other (peers vs nodes, hosts vs limits, local vs others).
    Conflict,
    /// A file the spec points to is missing or invalid.
    Reference,
}

impl SpecErrorKind {
    fn code(self) -> &'static str {
        match self {
            Self::Read => "cfxm::spec::read",
            Self::TooLarge => "cfxm::spec::too_large",
            Self::NotText => "cfxm::spec::not_text",
            Self::Syntax => "cfxm::spec::syntax",
            Self::Empty => "cfxm::spec::empty",
            Self::UnknownKey => "cfxm::spec::unknown_key",
            Self::MissingKey => "cfxm::spec::missing_key",
            Self::WrongType => "cfxm::spec::wrong_type",
            Self::OutOfRange => "cfxm::spec::out_of_range",
            Self::BadValue => "cfxm::spec::bad_value",
            Self::Duplicate => "cfxm::spec::duplicate",
            Self::Conflict => "cfxm::spec::conflict",
            Self::Reference => "cfxm::spec::reference",
        }
    }
}

/// One problem in a spec, located in its source.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub kind: SpecErrorKind,
    pub message: String,
    pub help: Option<String>,
    labels: Vec<(ByteSpan, String)>,
    source: Option<NamedSource<Arc<str>>>,
}

impl SpecError {
    pub(crate) fn new(kind: SpecErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            help: None,
            labels: Vec::new(),
            source: None,
        }
    }

    pub(crate) fn at(mut self, span: ByteSpan, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_source(mut self, source: &NamedSource<Arc<str>>) -> Self {
        self.source = Some(source.clone());
        self
    }

    /// 1-based line and column of the first label, for tests and JSON output.
    pub fn location(&self) -> Option<(usize, usize)> {
        let (span, _) = self.labels.first()?;
        let src = self.source.as_ref()?.inner();
        let before = &src[..span.start.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }

    /// The file this error is in, if it came from one.
    pub fn file(&self) -> Option<&str> {
        self.source.as_ref().map(NamedSource::name)
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

impl Diagnostic for SpecError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() || self.source.is_none() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(
            |(i, (s, l))| {
                let label = LabeledSpan::new_with_span(Some(l.clone()), *s);
                if i == 0 {
                    LabeledSpan::new_primary_with_span(label.label().map(str::to_string), *s)
                } else {
                    label
                }
            },
        )))
    }
}

/// Every problem found in one spec.
#[derive(Debug, Clone)]
pub struct SpecErrors {
    /// The spec's file name as the user gave it.
    pub file: String,
    pub errors: Vec<SpecError>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let s = if n == 1 { "" } else { "s" };
        write!(f, "`{}` has {n} problem{s}", self.file)
    }
}

impl std::error::Error for SpecErrors {}
