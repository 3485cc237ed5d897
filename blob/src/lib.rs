//! The blob store layer: target URL and credentials, blob naming, POSIX metadata,
//! streaming parallel upload and download, conditional writes and retries.
