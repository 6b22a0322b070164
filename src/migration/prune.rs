//! Every rejection in a document, not only the first: check it, take the rejected field out,
//! check again, until it loads. When taking a field out leaves its parent invalid (a required
//! field), the list element holding it goes instead, and the rejection covers that element.
//! Paths are reported as in the document the user wrote, whatever was taken out before.

use serde_json::Value;

use super::field_path::{FieldPath, Step};

/// One reason the document does not load.
#[derive(Debug, Clone)]
pub(super) struct Rejection {
    /// Where the model said it, in the user's document.
    pub path: FieldPath,
    /// What it takes out of the report: the field, or the list element that had to go with it.
    pub covers: FieldPath,
    pub reason: String,
}

/// What pruning found.
pub(super) struct Pruned<T> {
    pub rejections: Vec<Rejection>,
    /// The check's answer once nothing was rejected; `None` when pruning stopped at a
    /// rejection it could not take out (what lies after it was not checked).
    pub loaded: Option<T>,
}

/// Checks after this many rejections are not worth a report.
const MAX_REJECTIONS: usize = 500;

/// Finds the rejections of `document` under `check` (errors are field path and reason).
pub(super) fn prune<T>(
    mut document: Value,
    check: impl Fn(&Value) -> Result<T, (String, String)>,
) -> Pruned<T> {
    let mut rejections: Vec<Rejection> = Vec::new();
    // List elements taken out, in order, in the indexing of their time.
    let mut removed_elements: Vec<(FieldPath, usize)> = Vec::new();
    // The last field taken out, in the current indexing.
    let mut last_removed: Option<FieldPath> = None;
    while rejections.len() < MAX_REJECTIONS {
        let (path, reason) = match check(&document) {
            Ok(loaded) => {
                return Pruned {
                    rejections,
                    loaded: Some(loaded),
                };
            }
            Err(error) => error,
        };
        let current = FieldPath::parse(&path);
        // Taking the last field out made its parent invalid: the element holding it goes.
        if let Some(last) = &last_removed
            && last.is_within(&current)
            && let Some(element) = last.enclosing_element()
            && element.remove(&mut document)
        {
            if let Some(rejection) = rejections.last_mut() {
                rejection.covers = original(&element, &removed_elements);
            }
            removed_elements.extend(element.ends_in_element());
            last_removed = Some(element);
            continue;
        }
        let original_path = original(&current, &removed_elements);
        let mut rejection = Rejection {
            covers: original_path.clone(),
            path: original_path,
            reason,
        };
        match current.locate(&document) {
            Some(located) if !located.0.is_empty() && located.remove(&mut document) => {
                // A rejected list element shifts the ones after it.
                removed_elements.extend(located.ends_in_element());
                last_removed = Some(located);
            }
            // A field that is missing (required), or a value that is not a field: the list
            // element holding it goes.
            _ => match current.enclosing_element() {
                Some(element) if element.remove(&mut document) => {
                    rejection.covers = original(&element, &removed_elements);
                    removed_elements.extend(element.ends_in_element());
                    last_removed = Some(element);
                }
                // The rejection is of the document as a whole: nothing after it can be
                // checked.
                _ => {
                    rejections.push(rejection);
                    break;
                }
            },
        }
        rejections.push(rejection);
    }
    Pruned {
        rejections,
        loaded: None,
    }
}

/// `path` (in the current indexing) in the indexing of the original document.
fn original(path: &FieldPath, removed_elements: &[(FieldPath, usize)]) -> FieldPath {
    let mut steps = path.0.clone();
    for (list, index) in removed_elements.iter().rev() {
        let depth = list.0.len();
        if steps.len() > depth
            && steps[..depth] == list.0[..]
            && let Step::Index(i) = &mut steps[depth]
            && *i >= *index
        {
            *i += 1;
        }
    }
    FieldPath(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that refuses every `bad` field, and an element without `name`.
    fn check(document: &Value) -> Result<(), (String, String)> {
        let items = document["items"].as_array().expect("items");
        for (i, item) in items.iter().enumerate() {
            if item.get("name").is_none() {
                return Err((format!("items[{i}].name"), "is required".into()));
            }
            if item.get("bad").is_some() {
                return Err((format!("items[{i}].bad"), "not supported".into()));
            }
        }
        Ok(())
    }

    #[test]
    fn every_rejection_in_the_users_indexing() {
        let document = serde_json::json!({ "items": [
            { "name": "a", "bad": 1 },
            { "bad": 2 },
            { "name": "c", "bad": 3 },
        ] });
        let pruned = prune(document, check);
        assert!(pruned.loaded.is_some());
        let found: Vec<_> = pruned
            .rejections
            .iter()
            .map(|r| (r.path.to_string(), r.covers.to_string()))
            .collect();
        assert_eq!(
            found,
            [
                ("items[0].bad".to_string(), "items[0].bad".to_string()),
                ("items[1].name".to_string(), "items[1]".to_string()),
                ("items[2].bad".to_string(), "items[2].bad".to_string()),
            ]
        );
    }

    #[test]
    fn rejected_elements_keep_the_indices_after_them() {
        let document = serde_json::json!({ "items": ["ok", "bad", "ok", "bad"] });
        let pruned = prune(document, |document: &Value| {
            let items = document["items"].as_array().expect("items");
            match items.iter().position(|i| i == "bad") {
                Some(i) => Err((format!("items[{i}]"), "bad".to_string())),
                None => Ok(()),
            }
        });
        assert!(pruned.loaded.is_some());
        let found: Vec<_> = pruned
            .rejections
            .iter()
            .map(|r| r.path.to_string())
            .collect();
        assert_eq!(found, ["items[1]", "items[3]"]);
    }

    #[test]
    fn a_rejection_of_the_whole_document_stops_the_search() {
        let pruned = prune(serde_json::json!({}), |_| -> Result<(), _> {
            Err((String::new(), "empty".to_string()))
        });
        assert!(pruned.loaded.is_none());
        assert_eq!(pruned.rejections.len(), 1);
    }
}
