//! What the configuration file takes from its environment, and what it must never show:
//! `${VAR}` and `${VAR:-default}` in any string value are replaced by the variable (so a
//! Kubernetes Secret reaches `sasl.password` without templating the file; `$${` is a
//! literal `${`), and the values of secret-looking keys are redacted from every error and
//! from `check-config`.

use std::sync::OnceLock;

use regex::Regex;

/// Whether a key names secret material (`sasl.password`, `api.token`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, …).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential", "passphrase"]
        .iter()
        .any(|word| key.contains(word))
        || key.ends_with(".key")
        || key.ends_with("_key")
        || key == "basic_auth"
}

/// Replaces `${VAR}` / `${VAR:-default}` in every string of `table`; `lookup` reads a
/// variable. The error names the key and the variable. Returns whether anything changed.
pub fn interpolate(
    table: &mut toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    let mut changed = false;
    for (key, value) in table.iter_mut() {
        changed |= interpolate_value(key, value, lookup)?;
    }
    Ok(changed)
}

fn interpolate_value(
    path: &str,
    value: &mut toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    match value {
        toml::Value::String(text) if text.contains("${") => {
            *text = expand(path, text, lookup)?;
            Ok(true)
        }
        toml::Value::Table(table) => {
            let mut changed = false;
            for (key, v) in table.iter_mut() {
                changed |= interpolate_value(&format!("{path}.{key}"), v, lookup)?;
            }
            Ok(changed)
        }
        toml::Value::Array(items) => {
            let mut changed = false;
            for (i, v) in items.iter_mut().enumerate() {
                changed |= interpolate_value(&format!("{path}[{i}]"), v, lookup)?;
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

fn expand(
    path: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            return Err(format!(
                "{path}: unterminated \"${{\" in its value: write ${{VAR}}, ${{VAR:-default}}, or $${{ for a literal \"${{\""
            ));
        };
        let inner = &rest[at + 2..at + end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{path}: \"${{{inner}}}\" is not a variable reference: names are letters, digits and _"
            ));
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "{path}: environment variable {name} is not set: set it, or give a default with ${{{name}:-value}}"
                ))
            }
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every string value under a secret-looking key, for [`redact`].
pub fn secret_values(table: &toml::Table) -> Vec<String> {
    fn walk(key: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(k, v, out)),
            toml::Value::Array(items) => items.iter().for_each(|v| walk(key, v, out)),
            v if is_secret_key(key) => {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                if !text.is_empty() {
                    out.push(text);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    table.iter().for_each(|(k, v)| walk(k, v, &mut out));
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// `message` with every known secret value, and the value of every `secret-key = …` line
/// quoted in it (a TOML parse error shows the offending line), replaced by `<redacted>`.
pub fn redact(message: &str, secrets: &[String]) -> String {
    static LINE: OnceLock<Regex> = OnceLock::new();
    let line = LINE.get_or_init(|| {
        Regex::new(
            r#"(?im)^(.*?(?:password|secret|token|credential|passphrase|[._]key)"?\s*=\s*)(.+)$"#,
        )
        .expect("a constant, valid regex")
    });
    let mut out = line.replace_all(message, "${1}<redacted>").into_owned();
    for secret in secrets {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PW" => Some(r#"p&|"$w'd\n${X}"#.to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expanded(text: &str) -> Result<String, String> {
        expand("k", text, &env)
    }

    #[test]
    fn variables_defaults_and_escapes() {
        assert_eq!(expanded("${PW}").unwrap(), r#"p&|"$w'd\n${X}"#);
        assert_eq!(expanded("a-${PW}-b").unwrap(), r#"a-p&|"$w'd\n${X}-b"#);
        assert_eq!(expanded("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(expanded("${EMPTY:-dflt}").unwrap(), "");
        assert_eq!(expanded("$${PW}").unwrap(), "${PW}");
        assert_eq!(expanded("cost $5").unwrap(), "cost $5");
        let err = expanded("${NOPE}").unwrap_err();
        assert!(
            err.contains("k: environment variable NOPE is not set"),
            "{err}"
        );
        assert!(expanded("${PW").unwrap_err().contains("unterminated"));
        assert!(expanded("${a b}").unwrap_err().contains("not a variable"));
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        let table: toml::Table = toml::from_str(
            "[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n\"client.id\" = \"x\"\n[api]\ntoken = 1234567\n",
        )
        .unwrap();
        let secrets = secret_values(&table);
        assert_eq!(secrets, vec!["1234567".to_owned(), "hunter2".to_owned()]);
        let msg = "line 3 | \"sasl.password\" = \"hunter2\nbad value hunter2 and 1234567";
        let out = redact(msg, &secrets);
        assert!(
            !out.contains("hunter2") && !out.contains("1234567"),
            "{out}"
        );
        assert!(redact("2 | token = 99x", &[]).contains("token = <redacted>"));
        assert!(is_secret_key("ssl.key.password") && is_secret_key("api_key"));
        assert!(!is_secret_key("brokers") && !is_secret_key("client.id"));
    }
}
