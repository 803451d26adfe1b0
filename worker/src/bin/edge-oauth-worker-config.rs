//! Checks the worker's configuration before `wrangler dev` serves it (wrangler.toml's
//! `[build]` command runs this after `make worker`): the `[vars]` of `wrangler.toml` with the
//! local `.dev.vars` over them, validated by the same `Config::load` the worker runs on its
//! first request. Problems are printed together and the exit status is 1, so `wrangler dev`
//! stops at start instead of serving a worker that answers every request with a configuration
//! error. Without a `.dev.vars` (a deploy, whose secrets live in Cloudflare), a secret that is
//! not set locally is reported as a note, not a problem; with one, it is a problem.
//!
//! Usage: edge-oauth-worker-config [wrangler.toml] [.dev.vars]

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::ExitCode;

    use edge_oauth_worker::Config;
    use edge_oauth_worker::config::Source;

    struct Local {
        vars: BTreeMap<String, String>,
        dev_vars: Option<BTreeMap<String, String>>,
        /// Secrets asked for and not set locally.
        absent: RefCell<BTreeSet<String>>,
    }

    impl Source for Local {
        fn var(&self, name: &str) -> Option<String> {
            self.dev_vars
                .as_ref()
                .and_then(|d| d.get(name))
                .or_else(|| self.vars.get(name))
                .cloned()
        }
        fn secret(&self, name: &str) -> Option<String> {
            let found = self.var(name);
            if found.is_none() {
                self.absent.borrow_mut().insert(name.to_owned());
            }
            found
        }
    }

    /// `KEY=value`, `KEY="value"` or `KEY='value'` lines; `#` comments.
    pub fn parse_dev_vars(text: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let unquoted = [('"', '"'), ('\'', '\'')]
                .iter()
                .find_map(|(a, b)| value.strip_prefix(*a)?.strip_suffix(*b))
                .unwrap_or(value);
            out.insert(
                key.trim().trim_start_matches("export ").to_owned(),
                unquoted.to_owned(),
            );
        }
        out
    }

    fn vars(toml_text: &str) -> Result<BTreeMap<String, String>, String> {
        let doc: toml::Table = toml_text.parse().map_err(|e: toml::de::Error| {
            format!("wrangler.toml does not parse: {}", e.message())
        })?;
        let mut out = BTreeMap::new();
        if let Some(toml::Value::Table(vars)) = doc.get("vars") {
            for (k, v) in vars {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    // A table or array arrives in the worker as an object, read as JSON.
                    other => serde_json::to_string(other).map_err(|e| e.to_string())?,
                };
                out.insert(k.clone(), text);
            }
        }
        Ok(out)
    }

    /// Whether `problem` names the variable `name` as a whole word (`BFF_COOKIE_KEY` is not
    /// named by a problem about `BFF_COOKIE_KEY_PREVIOUS`).
    fn names(problem: &str, name: &str) -> bool {
        let word = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
        problem.match_indices(name).any(|(i, _)| {
            !problem[..i].ends_with(word) && !problem[i + name.len()..].starts_with(word)
        })
    }

    pub fn main() -> ExitCode {
        let mut args = std::env::args().skip(1);
        let toml_path = args.next().unwrap_or_else(|| "wrangler.toml".to_owned());
        let dev_path = args.next().unwrap_or_else(|| ".dev.vars".to_owned());
        let toml_text = match std::fs::read_to_string(&toml_path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("edge-oauth-worker: cannot read {toml_path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let vars = match vars(&toml_text) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("edge-oauth-worker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dev_vars = std::fs::read_to_string(&dev_path)
            .ok()
            .map(|t| parse_dev_vars(&t));
        let local = Local {
            vars,
            dev_vars,
            absent: RefCell::default(),
        };
        let result = Config::load(&local);
        let strict = local.dev_vars.is_some();
        // Secrets asked for, not set locally, and needed (an optional one is asked for too).
        let all: &[String] = result.as_ref().err().map_or(&[], |e| &e.problems);
        let absent: BTreeSet<String> = local
            .absent
            .into_inner()
            .into_iter()
            .filter(|name| all.iter().any(|p| names(p, name)))
            .collect();
        let problems: Vec<&String> = all
            .iter()
            .filter(|p| strict || !absent.iter().any(|name| names(p, name)))
            .collect();
        if !strict {
            for name in &absent {
                eprintln!(
                    "edge-oauth-worker: note: the secret {name} is not set locally (no {dev_path}); set it with `wrangler secret put {name}` before deploying"
                );
            }
        }
        if problems.is_empty() {
            eprintln!(
                "edge-oauth-worker: configuration of {toml_path}{} is valid",
                if strict {
                    format!(" with {dev_path}")
                } else {
                    String::new()
                }
            );
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "edge-oauth-worker: the configuration is not valid; the worker would refuse every request:"
        );
        for p in &problems {
            eprintln!("  - {p}");
        }
        ExitCode::FAILURE
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn whole_names_only() {
            assert!(names(
                "the secret BFF_COOKIE_KEY is not set",
                "BFF_COOKIE_KEY"
            ));
            assert!(!names(
                "BFF_COOKIE_KEY_PREVIOUS is not base64",
                "BFF_COOKIE_KEY"
            ));
            assert!(!names("XBFF_COOKIE_KEY", "BFF_COOKIE_KEY"));
        }

        #[test]
        fn dev_vars_lines() {
            let v = parse_dev_vars(
                "# c\nA=\"x y\"\nB='{\"k\":1}'\nC=plain\n\nexport D=1\nnot a line\n",
            );
            assert_eq!(v["A"], "x y");
            assert_eq!(v["B"], r#"{"k":1}"#);
            assert_eq!(v["C"], "plain");
            assert_eq!(v["D"], "1");
            assert_eq!(v.len(), 4);
        }

        #[test]
        fn the_committed_wrangler_toml_is_valid_but_for_its_secrets() {
            let text = include_str!("../../../wrangler.toml");
            let local = Local {
                vars: vars(text).unwrap(),
                dev_vars: None,
                absent: RefCell::default(),
            };
            let e = Config::load(&local).unwrap_err();
            assert!(local.absent.into_inner().contains("MAIN_CLIENT_SECRET"));
            assert!(
                e.problems.iter().all(|p| p.contains("MAIN_CLIENT_SECRET")),
                "{e}"
            );
        }
    }
}
