//! OCI distribution client: auth, mirrors, verified parallel pull, push, platform selection.
#![forbid(unsafe_code)]
