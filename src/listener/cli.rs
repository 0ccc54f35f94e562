//! CLI logic (todo)
