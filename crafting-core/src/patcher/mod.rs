//! The patch loop's building blocks: diffs, tools' own fixes, agents and forges.

pub mod agent;
pub mod diff;
pub mod forge;
pub mod native;
