//! Safe Lustre API: FIDs, typed changelog records, copytool sessions, HSM requests.
//! Nothing here knows about blobs.
