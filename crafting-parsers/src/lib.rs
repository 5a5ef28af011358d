//! Tool output in, findings out.
//!
//! `crafting-parsers` is a pure library: it does no I/O of its own and holds no
//! async code. The engine hands it a job's log together with a [`ParseContext`]
//! (language, recipe, exit code, where the repository was checked out) and gets
//! back a list of [`Finding`]s whose paths are relative to the repository root.
//!
//! ```
//! use crafting_parsers::{ParseContext, Registry};
//!
//! let registry = Registry::with_defaults();
//! let ctx = ParseContext::new("rust", "test", Some(2), "/work/repo", ".");
//! let findings = registry.parse(&ctx, &mut "oops\n".as_bytes());
//! assert_eq!(findings[0].code, "exit_2");
//! ```
#![warn(missing_docs)]

mod finding;
mod registry;

pub use finding::{Finding, Kind, Severity, fingerprint};
pub use registry::{ParseContext, Parser, Registry};
