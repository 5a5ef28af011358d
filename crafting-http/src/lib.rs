//! The crafting-table HTTP API.
