//! crafting-core
