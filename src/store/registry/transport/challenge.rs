//! `WWW-Authenticate` challenges and token scopes (`repository:NAME:pull,push`).

/// One challenge of a `WWW-Authenticate` header: a scheme (lowercased) and its parameters (keys
/// lowercased, values unquoted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge in a header value. Quoted values may contain commas, spaces and
/// backslash escapes; several challenges may share one header (`Bearer a=1, Basic realm=x`).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip(|c| c == b',' || c.is_ascii_whitespace());
        let scheme = p.token();
        if scheme.is_empty() {
            break;
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        while let Some((k, v)) = p.param() {
            ch.params.push((k.to_ascii_lowercase(), v));
        }
        out.push(ch);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|c| !(c == b',' || c == b'=' || c == b'"' || c.is_ascii_whitespace()));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// `key=value` or `key="quoted"` followed by an optional comma. Leaves the position untouched
    /// (and returns `None`) when what follows is not a parameter, e.g. the next challenge's scheme.
    fn param(&mut self) -> Option<(String, String)> {
        let save = self.i;
        self.skip(|c| c == b',' || c.is_ascii_whitespace());
        let key = self.token();
        self.skip(|c| c.is_ascii_whitespace());
        if key.is_empty() || self.peek() != Some(b'=') {
            self.i = save;
            return None;
        }
        self.i += 1;
        self.skip(|c| c.is_ascii_whitespace());
        let value = if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.token()
        };
        Some((key, value))
    }

    fn quoted(&mut self) -> String {
        self.i += 1; // opening quote
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        v.push(n);
                        self.i += 1;
                    }
                }
                _ => v.push(c),
            }
        }
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// `repository:NAME:pull`.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// `repository:NAME:pull,push`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// `repository:NAME:delete` (what distribution asks of a DELETE; `*` covers it too).
pub fn delete_scope(repository: &str) -> String {
    format!("repository:{repository}:delete")
}

/// Splits `TYPE:NAME:ACTIONS` (the name may itself contain colons, e.g. a port).
fn split_scope(s: &str) -> Option<(&str, &str, Vec<&str>)> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((kind, name, actions.split(',').collect()))
}

/// Whether a token granted for `have` allows everything `want` asks for.
pub fn covers(have: &[String], want: &str) -> bool {
    if have.iter().any(|h| h == want) {
        return true;
    }
    let Some((kind, name, actions)) = split_scope(want) else {
        return false;
    };
    have.iter().filter_map(|h| split_scope(h)).any(|(k, n, a)| {
        k == kind && n == name && (a.contains(&"*") || actions.iter().all(|x| a.contains(x)))
    })
}

/// `scopes` plus whatever in `more` they do not already cover, sorted and de-duplicated.
pub fn merge(scopes: &[String], more: &[String]) -> Vec<String> {
    let mut out: Vec<String> = scopes.to_vec();
    for m in more {
        if !covers(&out, m) {
            out.push(m.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_commas() {
        let h = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push repository:other:pull""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:team/app:pull,push repository:other:pull")
        );
    }

    #[test]
    fn several_challenges_escapes_and_unquoted_values() {
        let h = r#"Basic realm="a \"quoted\" realm, with comma", Bearer realm=https://t.example/x , error="insufficient_scope""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"a "quoted" realm, with comma"#));
        assert_eq!(c[1].param("realm"), Some("https://t.example/x"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Basic")[0].params.len(), 0);
    }

    #[test]
    fn scope_coverage() {
        let have = vec![push_scope("a/b"), "repository:c:*".to_string()];
        assert!(covers(&have, &pull_scope("a/b")));
        assert!(covers(&have, &push_scope("a/b")));
        assert!(covers(&have, &push_scope("c")));
        assert!(!covers(&have, &pull_scope("a")));
        assert!(!covers(&[pull_scope("a/b")], &push_scope("a/b")));
        let merged = merge(&[push_scope("x")], &[pull_scope("x"), pull_scope("y")]);
        assert_eq!(merged, vec![push_scope("x"), pull_scope("y")]);
    }
}
