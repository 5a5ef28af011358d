//! JUnit XML reports printed into the log (`cat report.xml`).
//!
//! A report starts at a `<testsuites` or `<testsuite` tag and ends at the
//! matching closing tag; it is buffered (up to 64 MiB) and parsed whole.
//! Each `<testcase>` holding a `<failure>` or `<error>` is a `test_fail`.
//! The code is chosen to match what the same runner prints on the console:
//! - pytest reports (suite named `pytest`): the node id, rebuilt from the
//!   test file named in the failure text and the dotted `classname`
//!   (`tests/test_x.py::TestA::test_b`); collection errors use the file;
//! - cargo-nextest reports (`<testsuites name="nextest-run">`): the test
//!   name (`tests::it_works`), as `cargo test` prints it;
//! - anything else: `classname.name`, or `name` without a classname.
//!
//! The place comes from the `file` and `line` attributes when present, else
//! from the failure text: a Rust panic location, the last `path.py:line:`
//! of a pytest traceback. Rust panics also give the message.
//!
//! pytest writes classnames (and xunit1 `file` attributes) relative to its
//! rootdir, which the report does not name. When a failure text of the same
//! report prints an absolute path whose end spells a case's dotted module
//! (`/repo/py/pkg/tests/test_x.py` for `tests.test_x`), the rootdir is that
//! path minus the module's file (`py/pkg`), and the report's relative paths
//! are read from there; otherwise from the work dir.

use std::sync::LazyLock;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use regex::Regex;
use serde_json::json;

use super::cargo_test::PanicReader;
use super::pytest::NAMED_FILE;
use super::truncate;
use crate::finding::{Finding, Kind, Severity};
use crate::paths::{PathMapper, is_absolute};
use crate::registry::{ParseContext, Session};
use crate::stream::MAX_DOCUMENT_BYTES;

static PY_LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\S[^\n]*?\.py):(\d+): ").expect("valid regex"));

#[derive(Default, Clone)]
struct Case {
    suite: String,
    classname: String,
    name: String,
    file: Option<String>,
    line: Option<u32>,
    outcome: Option<&'static str>,
    kind: String,
    message: String,
    text: String,
}

#[derive(PartialEq, Clone, Copy)]
enum Flavour {
    Pytest,
    Nextest,
    Other,
}

/// Buffers and reads JUnit reports.
pub(crate) struct JunitSession {
    paths: PathMapper,
    /// The report being collected and the closing tag that ends it.
    open: Option<(String, &'static str)>,
    overflow: bool,
}

impl JunitSession {
    pub(crate) fn new(ctx: &ParseContext) -> Self {
        JunitSession { paths: PathMapper::new(ctx), open: None, overflow: false }
    }

    fn report(&self, xml: &str, out: &mut Vec<Finding>) {
        let cases = read_cases(xml);
        let rootdir = self.pytest_rootdir(&cases);
        for case in cases {
            out.push(self.convert(case, rootdir.as_deref()));
        }
    }

    /// The rootdir of a pytest report, inferred from absolute paths in its
    /// failure texts (or `file` attributes) that end with a case's module.
    fn pytest_rootdir(&self, cases: &[Case]) -> Option<String> {
        cases.iter().filter(|c| c.suite == "pytest").find_map(|case| {
            let dotted = dotted_id(case);
            let spots = PY_LOCATION.captures_iter(&case.text).map(|c| c.get(1));
            let named = NAMED_FILE.captures_iter(&case.text).map(|c| c.get(1).or_else(|| c.get(2)));
            spots
                .chain(named)
                .flatten()
                .map(|m| m.as_str())
                .chain(case.file.as_deref())
                .filter(|p| is_absolute(p))
                .find_map(|abs| {
                    let rel = module_file(abs, &dotted)?;
                    self.paths.base_of(abs, &rel)
                })
        })
    }

    fn convert(&self, case: Case, pytest_rootdir: Option<&str>) -> Finding {
        let flavour = if case.suite == "pytest" {
            Flavour::Pytest
        } else if case.suite == "nextest-run" {
            Flavour::Nextest
        } else {
            Flavour::Other
        };
        let work = self.paths.work_dir();
        let base = match (flavour, pytest_rootdir) {
            (Flavour::Pytest, Some(root)) => root.to_owned(),
            _ => work.clone(),
        };
        let mut file = case.file.as_deref().and_then(|f| self.paths.map_from(f, &base));
        let mut line = case.line;
        let mut column = None;
        let mut message = first_line(&case.message).unwrap_or_default();

        // A Rust panic says where and what.
        let mut reader = PanicReader::default();
        for l in case.text.lines() {
            reader.feed(l);
        }
        if let Some(panic) = reader.take() {
            if file.is_none() {
                file = self.paths.map(&panic.file);
                line = file.as_ref().map(|_| panic.line);
                column = file.as_ref().map(|_| panic.column);
            }
            let text = panic.message.join("\n");
            if !text.trim().is_empty() {
                message = text.trim().to_owned();
            }
        }

        let mut code = match (&flavour, case.classname.is_empty()) {
            (Flavour::Nextest, _) | (_, true) => case.name.clone(),
            _ => format!("{}.{}", case.classname, case.name),
        };
        if flavour == Flavour::Pytest {
            // The traceback names the test file; the classname is its dotted
            // module path, maybe followed by a class.
            let spots: Vec<(String, u32)> = PY_LOCATION
                .captures_iter(&case.text)
                .map(|c| (c[1].to_owned(), c[2].parse().unwrap_or(0)))
                .collect();
            let dotted_id = dotted_id(&case);
            let mut matched = false;
            for (printed, l) in spots.iter().rev() {
                // An absolute path names the node id's file by its end.
                let path = if is_absolute(printed) {
                    let Some(rel) = module_file(printed, &dotted_id) else { continue };
                    rel
                } else {
                    printed.clone()
                };
                let module = path.trim_end_matches(".py").replace(['/', '\\'], ".");
                let Some(rest) = dotted_id.strip_prefix(&module) else { continue };
                let mapped = self.paths.map_from(printed, &base);
                if rest.is_empty() {
                    // A collection error: the id is the file.
                    code = path.clone();
                    file = mapped;
                    line = None;
                    column = None;
                } else if case.classname.is_empty() || case.classname.len() >= module.len() {
                    let classes = case.classname[module.len().min(case.classname.len())..]
                        .trim_start_matches('.')
                        .split('.')
                        .filter(|p| !p.is_empty())
                        .map(|c| format!("::{c}"))
                        .collect::<String>();
                    code = format!("{path}{classes}::{}", case.name);
                    file = mapped;
                    line = Some(*l);
                }
                matched = true;
                break;
            }
            if !matched {
                // A module that does not parse is only named by its
                // absolute path (`File "/r/tests/test_x.py", line 3`).
                let named = NAMED_FILE
                    .captures_iter(&case.text)
                    .filter_map(|c| c.get(1).or_else(|| c.get(2)))
                    .map(|m| m.as_str())
                    .filter(|p| is_absolute(p))
                    .find_map(|abs| {
                        let rel = module_file(abs, &dotted_id)?;
                        let whole = rel.trim_end_matches(".py").replace('/', ".") == dotted_id;
                        whole.then(|| (rel, self.paths.map(abs)))
                    });
                if let Some((rel, mapped)) = named {
                    code = rel;
                    file = mapped;
                    line = None;
                    column = None;
                }
            }
            if message.is_empty() {
                message = case.kind.clone();
            }
        }
        if message.is_empty() {
            message = "test failed".to_owned();
        }
        let raw = json!({
            "suite": case.suite,
            "classname": case.classname,
            "name": case.name,
            "outcome": case.outcome,
            "type": case.kind,
            "message": case.message,
            "text": truncate(&case.text, 8 * 1024),
            "work_dir": work,
        });
        let tool = match flavour {
            Flavour::Pytest => "pytest",
            Flavour::Nextest => "cargo-nextest",
            Flavour::Other => "junit",
        };
        Finding::new(Kind::TestFail, Severity::Error, tool, code, message)
            .at(file, line, column)
            .with_raw(raw)
    }
}

/// A pytest case's dotted id: `classname.name`, or `name` alone.
fn dotted_id(case: &Case) -> String {
    if case.classname.is_empty() {
        case.name.clone()
    } else {
        format!("{}.{}", case.classname, case.name)
    }
}

/// The longest end of an absolute `.py` path whose dotted module starts
/// `dotted` (`/r/py/tests/test_x.py` and `tests.test_x.test_a` give
/// `tests/test_x.py`).
fn module_file(abs: &str, dotted: &str) -> Option<String> {
    let stem = abs.strip_suffix(".py")?;
    let parts: Vec<&str> = stem.split(['/', '\\']).collect();
    (1..parts.len()).rev().find_map(|k| {
        let tail = &parts[parts.len() - k..];
        if tail.iter().any(|p| p.is_empty()) {
            return None;
        }
        let module = tail.join(".");
        let rest = dotted.strip_prefix(&module)?;
        (rest.is_empty() || rest.starts_with('.')).then(|| format!("{}.py", tail.join("/")))
    })
}

fn first_line(s: &str) -> Option<String> {
    s.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned)
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    let a = e.try_get_attribute(name).ok().flatten()?;
    let value = a.normalized_value(XmlVersion::Implicit1_0).map(|v| v.into_owned());
    Some(value.unwrap_or_else(|_| a.value.clone().into_owned()))
}

/// The failed and errored test cases of one report.
fn read_cases(xml: &str) -> Vec<Case> {
    let mut reader = Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut suite_name = String::new();
    let mut top_name: Option<String> = None;
    let mut case: Option<Case> = None;
    let mut in_failure = false;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(e) => e,
        };
        match event {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "testsuites" => {
                top_name = attr(&e, "name");
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "testsuite" => {
                suite_name = attr(&e, "name").unwrap_or_default();
            }
            Event::Start(e) if e.name().as_ref() == "testcase" => {
                case = Some(new_case(&e, &suite_name, top_name.as_deref()));
            }
            Event::Empty(e) if e.name().as_ref() == "testcase" => {
                case = None;
            }
            Event::Start(e) if is_failure(&e) => {
                in_failure = open_failure(case.as_mut(), &e);
            }
            Event::Empty(e) if is_failure(&e) => {
                open_failure(case.as_mut(), &e);
            }
            Event::End(e) if matches!(e.name().as_ref(), "failure" | "error") => {
                in_failure = false;
            }
            Event::Text(t) if in_failure => {
                if let Some(c) = case.as_mut() {
                    let raw: String = t.as_ref().to_owned();
                    let text =
                        quick_xml::escape::unescape(&raw).map(|c| c.into_owned()).unwrap_or(raw);
                    c.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) if in_failure => {
                if let Some(c) = case.as_mut() {
                    let name: &str = r.as_ref();
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity)
                        .map(|c| c.into_owned())
                        .unwrap_or(entity);
                    c.text.push_str(&text);
                }
            }
            Event::CData(t) if in_failure => {
                if let Some(c) = case.as_mut() {
                    c.text.push_str(t.as_ref());
                }
            }
            Event::End(e) if e.name().as_ref() == "testcase" => {
                if let Some(c) = case.take()
                    && c.outcome.is_some()
                {
                    cases.push(c);
                }
                in_failure = false;
            }
            _ => {}
        }
    }
    cases
}

fn is_failure(e: &BytesStart<'_>) -> bool {
    matches!(e.name().as_ref(), "failure" | "error")
}

/// Records the first failure or error of a case; `true` when its text
/// should be read.
fn open_failure(case: Option<&mut Case>, e: &BytesStart<'_>) -> bool {
    let Some(c) = case else { return false };
    if c.outcome.is_some() {
        return false;
    }
    c.outcome = Some(if e.name().as_ref() == "failure" { "failure" } else { "error" });
    c.message = attr(e, "message").unwrap_or_default();
    c.kind = attr(e, "type").unwrap_or_default();
    true
}

fn new_case(e: &BytesStart<'_>, suite: &str, top: Option<&str>) -> Case {
    let suite = match top {
        Some("nextest-run") => "nextest-run".to_owned(),
        _ => suite.to_owned(),
    };
    Case {
        suite,
        classname: attr(e, "classname").unwrap_or_default(),
        name: attr(e, "name").unwrap_or_default(),
        file: attr(e, "file"),
        line: attr(e, "line").and_then(|l| l.parse().ok()),
        ..Case::default()
    }
}

impl Session for JunitSession {
    fn line(&mut self, line: &str, out: &mut Vec<Finding>) -> bool {
        if let Some((buf, closing)) = &mut self.open {
            if !self.overflow {
                if buf.len() + line.len() > MAX_DOCUMENT_BYTES {
                    self.overflow = true;
                    buf.clear();
                } else {
                    buf.push_str(line);
                    buf.push('\n');
                }
            }
            if line.contains(*closing) {
                let (xml, _) = self.open.take().unwrap_or_default();
                if !self.overflow {
                    self.report(&xml, out);
                }
                self.overflow = false;
            }
            return true;
        }
        if !line.trim_start().starts_with('<') {
            return false;
        }
        let (start, closing) = match (line.find("<testsuites"), line.find("<testsuite")) {
            (Some(i), _) => (i, "</testsuites>"),
            (None, Some(i)) => (i, "</testsuite>"),
            _ => return line.trim_start().starts_with("<?xml"),
        };
        let from = line[..start].find("<?xml").unwrap_or(start);
        let body = &line[from..];
        // A report that opens and closes on one line (or is an empty suite).
        let self_closing = body.find('>').is_some_and(|i| body[..i].ends_with('/'));
        if body.contains(closing) || self_closing {
            self.report(body, out);
            return true;
        }
        self.open = Some((format!("{body}\n"), closing));
        true
    }

    fn finish(&mut self, out: &mut Vec<Finding>) {
        // A report cut off by the end of the log: read what arrived.
        if let Some((xml, _)) = self.open.take()
            && !self.overflow
        {
            self.report(&xml, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::module_file;

    #[test]
    fn module_file_finds_the_dotted_module_at_the_end_of_a_path() {
        let id = "tests.test_x.TestA.test_b";
        assert_eq!(
            module_file("/r/py/pkg/tests/test_x.py", id).as_deref(),
            Some("tests/test_x.py")
        );
        assert_eq!(
            module_file("/r/py/pkg/test_x.py", "test_x.test_a").as_deref(),
            Some("test_x.py")
        );
        assert_eq!(module_file("/r/py/pkg/tests/test_xy.py", id), None);
        assert_eq!(module_file("/r/py/pkg/tests/test_x.txt", id), None);
    }
}
