//! Field paths as the model reports them (`filter_chains[0].filters[0].typed_config`), and
//! what they point at in a document's JSON.

use std::fmt;

use serde_json::Value;

/// One step of a path: a field (or map key) or an element of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// A path from a document's root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct FieldPath(pub Vec<Step>);

impl FieldPath {
    /// Reads `a.b[0].c` and `a[map.key].c`. Map keys after a dot may hold dots too;
    /// [`FieldPath::locate`] rejoins them.
    pub(super) fn parse(text: &str) -> FieldPath {
        let mut steps = Vec::new();
        for part in split_outside_brackets(text).filter(|p| !p.is_empty()) {
            let (name, mut rest) = match part.find('[') {
                Some(at) => (&part[..at], &part[at..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                steps.push(Step::Key(name.to_string()));
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let Some(end) = inner.find(']') else {
                    break;
                };
                match inner[..end].parse() {
                    Ok(index) => steps.push(Step::Index(index)),
                    Err(_) => steps.push(Step::Key(inner[..end].to_string())),
                }
                rest = &inner[end + 1..];
            }
        }
        FieldPath(steps)
    }

    /// Whether the path's last step is a list element.
    pub(super) fn ends_in_element(&self) -> Option<(FieldPath, usize)> {
        match self.0.split_last() {
            Some((Step::Index(index), list)) => Some((FieldPath(list.to_vec()), *index)),
            _ => None,
        }
    }

    pub(super) fn child(&self, step: Step) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(step);
        FieldPath(steps)
    }

    /// Whether `self` is `other` or inside it.
    pub(super) fn is_within(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// The list element that holds this path's last field, if any (`a[0]` for `a[0].b`).
    pub(super) fn enclosing_element(&self) -> Option<FieldPath> {
        let last = self.0.len().checked_sub(1)?;
        let at = self.0[..last]
            .iter()
            .rposition(|step| matches!(step, Step::Index(_)))?;
        Some(FieldPath(self.0[..=at].to_vec()))
    }

    /// The steps that exist in `root`, with dotted map keys rejoined; `None` when the path
    /// leads nowhere.
    pub(super) fn locate(&self, root: &Value) -> Option<FieldPath> {
        let mut found = Vec::new();
        let mut at = root;
        let mut steps = self.0.iter().peekable();
        while let Some(step) = steps.next() {
            match (step, at) {
                (Step::Index(i), Value::Array(items)) => {
                    at = items.get(*i)?;
                    found.push(Step::Index(*i));
                }
                (Step::Key(key), Value::Object(map)) => {
                    let mut key = key.clone();
                    while !map.contains_key(&key) {
                        match steps.peek() {
                            Some(Step::Key(next)) => {
                                key = format!("{key}.{next}");
                                steps.next();
                            }
                            _ => return None,
                        }
                    }
                    at = &map[&key];
                    found.push(Step::Key(key));
                }
                _ => return None,
            }
        }
        Some(FieldPath(found))
    }

    /// Removes what the (located) path points at from `root`.
    pub(super) fn remove(&self, root: &mut Value) -> bool {
        let Some((last, parents)) = self.0.split_last() else {
            return false;
        };
        let mut at = root;
        for step in parents {
            at = match (step, at) {
                (Step::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                    Some(item) => item,
                    None => return false,
                },
                (Step::Key(key), Value::Object(map)) => match map.get_mut(key) {
                    Some(value) => value,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, at) {
            (Step::Index(i), Value::Array(items)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            (Step::Key(key), Value::Object(map)) => map.shift_remove(key).is_some(),
            _ => false,
        }
    }

    /// The path with list indices left out (`a[].b`), which names a feature wherever it is.
    pub(super) fn feature(&self) -> String {
        let mut out = String::new();
        for step in &self.0 {
            match step {
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(_) => out.push_str("[]"),
            }
        }
        out
    }
}

/// `text` split at the dots that are not inside `[...]`.
fn split_outside_brackets(text: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    text.split(move |c: char| {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        c == '.' && depth == 0
    })
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for step in &self.0 {
            match step {
                Step::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Step::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_locate_and_remove() {
        let mut doc = serde_json::json!({
            "a": [ { "b": 1, "c": 2 } ],
            "layer": { "outrider.flag": true },
        });
        let path = FieldPath::parse("a[0].b");
        assert_eq!(path.to_string(), "a[0].b");
        assert_eq!(path.feature(), "a[].b");
        assert_eq!(
            path.enclosing_element().map(|p| p.to_string()),
            Some("a[0]".into())
        );
        let dotted = FieldPath::parse("layer.outrider.flag")
            .locate(&doc)
            .expect("found");
        assert_eq!(dotted.0.len(), 2);
        assert!(dotted.remove(&mut doc));
        assert!(path.locate(&doc).expect("found").remove(&mut doc));
        assert_eq!(doc, serde_json::json!({ "a": [ { "c": 2 } ], "layer": {} }));
        assert!(FieldPath::parse("a[3]").locate(&doc).is_none());
        let bracketed = FieldPath::parse("options[envoy.x.v3.Options].http.max");
        assert_eq!(
            bracketed.0,
            [
                Step::Key("options".into()),
                Step::Key("envoy.x.v3.Options".into()),
                Step::Key("http".into()),
                Step::Key("max".into()),
            ]
        );
    }
}
