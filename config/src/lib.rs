//! The policy file (DESIGN §9): one TOML schema read by both `lhsmtool_blob` and `lustre-blob`.
