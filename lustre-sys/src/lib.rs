//! Raw ABI of liblustreapi: `#[repr(C)]` types, constants and a function table
//! resolved at run time. No logic lives here; see the `lustre` crate for the safe API.
