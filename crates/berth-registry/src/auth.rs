use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send `user:password` on every request.
    Basic,
    /// `Bearer realm=…,service=…[,scope=…]`: fetch a token from `realm`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a header value; `None` when it is neither Basic nor a Bearer with a realm.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        let params = parse_params(rest)?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `k="v", k2=v2` → map (keys lower-cased); `None` on a malformed list.
fn parse_params(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: Instant,
}

/// The token endpoint's answer (Docker's and OAuth2's field names).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // Docker's default lifetime is 60 s; refresh 10 s early so a token never expires
        // between the check and the request.
        let ttl = self.expires_in.unwrap_or(60).max(20);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(ttl - 10),
        })
    }
}

/// Per-(host, scope) token cache plus the challenge each host answered with.
#[derive(Default)]
pub(crate) struct AuthState {
    pub challenges: BTreeMap<String, Challenge>,
    pub tokens: BTreeMap<(String, String), Token>,
}

impl AuthState {
    pub fn token(&self, host: &str, scope: &str) -> Option<String> {
        self.tokens
            .get(&(host.to_owned(), scope.to_owned()))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_and_distribution_challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("basic"), Some(Challenge::Basic));
        assert_eq!(
            Challenge::parse(r#"Bearer realm=http://x/t, service="a \"b\"""#),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("a \"b\"".into()),
                scope: None
            })
        );
        assert_eq!(
            Challenge::parse(r#"Bearer service="x""#),
            None,
            "bearer needs a realm"
        );
        assert_eq!(Challenge::parse(r#"Negotiate abc"#), None);
        assert_eq!(Challenge::parse(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn tokens_expire_early_and_cache_per_scope() {
        let t = TokenResponse {
            token: None,
            access_token: Some("abc".into()),
            expires_in: Some(300),
        }
        .into_token()
        .unwrap();
        assert!(t.expires > Instant::now() + Duration::from_secs(280));
        assert!(
            TokenResponse {
                token: Some(String::new()),
                access_token: None,
                expires_in: None
            }
            .into_token()
            .is_none()
        );
        let mut st = AuthState::default();
        st.tokens.insert(("h".into(), "s".into()), t);
        st.tokens.insert(
            ("h".into(), "old".into()),
            Token {
                value: "x".into(),
                expires: Instant::now() - Duration::from_secs(1),
            },
        );
        assert_eq!(st.token("h", "s").as_deref(), Some("abc"));
        assert_eq!(st.token("h", "old"), None);
        assert_eq!(st.token("h2", "s"), None);
    }
}
