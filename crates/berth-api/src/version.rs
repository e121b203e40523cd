//! API version prefixes: `/v1.24` … `/v1.44`, and unversioned paths.

use berth_engine::system::{API_VERSION, MIN_API_VERSION};

/// A parsed `major.minor` API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Major (always 1).
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl ApiVersion {
    /// Parses `1.44`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (a, b) = s.split_once('.')?;
        Some(ApiVersion {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }

    /// The highest version served.
    pub fn max() -> ApiVersion {
        ApiVersion::parse(API_VERSION).unwrap_or(ApiVersion {
            major: 1,
            minor: 44,
        })
    }

    /// The lowest version served.
    pub fn min() -> ApiVersion {
        ApiVersion::parse(MIN_API_VERSION).unwrap_or(ApiVersion {
            major: 1,
            minor: 24,
        })
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Splits `/v1.44/images/json` into the version and `/images/json`. Unversioned paths are
/// served as the maximum version. A version out of range is Docker's 400 message.
pub fn split_version(path: &str) -> Result<(ApiVersion, &str), String> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((ApiVersion::max(), path));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(v) = ApiVersion::parse(ver) else {
        // Not a version prefix (e.g. `/volumes`): route as is.
        return Ok((ApiVersion::max(), path));
    };
    if v > ApiVersion::max() {
        return Err(format!(
            "client version {v} is too new. Maximum supported API version is {}",
            ApiVersion::max()
        ));
    }
    if v < ApiVersion::min() {
        return Err(format!(
            "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            ApiVersion::min()
        ));
    }
    Ok((v, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_and_bounds_are_docker_messages() {
        assert_eq!(
            split_version("/v1.44/images/json").unwrap().1,
            "/images/json"
        );
        assert_eq!(
            split_version("/v1.24/version").unwrap().0,
            ApiVersion {
                major: 1,
                minor: 24
            }
        );
        assert_eq!(
            split_version("/images/json").unwrap(),
            (ApiVersion::max(), "/images/json")
        );
        assert_eq!(split_version("/volumes").unwrap().1, "/volumes");
        assert_eq!(
            split_version("/v1.50/version").unwrap_err(),
            "client version 1.50 is too new. Maximum supported API version is 1.44"
        );
        assert!(
            split_version("/v1.12/version").unwrap_err().starts_with(
                "client version 1.12 is too old. Minimum supported API version is 1.24"
            )
        );
    }
}
