//! Reading a policy directory: the schema, each `*.cedar` file parsed on its own (so every
//! error names its file), policy ids from `@id` annotations, and strict validation of the
//! whole set against the schema. Every problem is reported as `file:line:col: message`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{PolicyId, Schema, ValidationMode, Validator};
use miette::Diagnostic;

use super::PolicyError;
use crate::config::line_col;

pub(super) struct Loaded {
    pub policies: cedar_policy::PolicySet,
    pub files: usize,
}

/// `file:line:col: message` for a diagnostic whose labels point into `text`.
fn located(file: &Path, text: &str, d: &dyn Diagnostic, message: &str) -> String {
    let offset = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset())
        .unwrap_or(0);
    let (line, col) = line_col(text, offset);
    let mut out = format!("{}:{line}:{col}: {message}", file.display());
    if let Some(help) = d.help() {
        out.push_str(&format!(" ({help})"));
    }
    out
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn load(dir: &Path) -> Result<Loaded, PolicyError> {
    let schema_path = dir.join("schema.cedarschema");
    let schema_text = read(&schema_path)?;
    let schema = match Schema::from_cedarschema_str(&schema_text) {
        Ok((schema, _warnings)) => schema,
        Err(e) => {
            return Err(PolicyError::Invalid(vec![located(
                &schema_path,
                &schema_text,
                &e,
                &e.to_string(),
            )]));
        }
    };

    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| PolicyError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cedar") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(PolicyError::Invalid(vec![format!(
            "{}: no *.cedar policy files: with no policies every request would be denied",
            dir.display()
        )]));
    }

    let mut problems = Vec::new();
    let mut combined = cedar_policy::PolicySet::new();
    // Which file (and its text) each policy came from, to place validation errors.
    let mut origin: HashMap<String, usize> = HashMap::new();
    let mut texts: Vec<(PathBuf, String)> = Vec::new();
    for path in &files {
        let text = read(path)?;
        let index = texts.len();
        match cedar_policy::PolicySet::from_str(&text) {
            Err(errors) => {
                for e in errors.iter() {
                    problems.push(located(path, &text, e, &e.to_string()));
                }
            }
            Ok(set) => {
                if set.templates().next().is_some() {
                    problems.push(format!(
                        "{}:1:1: policy templates are not supported; write static policies",
                        path.display()
                    ));
                }
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                for (i, policy) in set.policies().enumerate() {
                    let id = policy
                        .annotation("id")
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{stem}.{i}"));
                    if origin.contains_key(&id) {
                        let loc = text.find(&format!("@id(\"{id}\")")).unwrap_or(0);
                        let (line, col) = line_col(&text, loc);
                        problems.push(format!("{}:{line}:{col}: policy id `{id}` is used twice; every @id must be unique", path.display()));
                        continue;
                    }
                    if let Err(e) = combined.add(policy.new_id(PolicyId::new(&id))) {
                        problems.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                    origin.insert(id, index);
                }
            }
        }
        texts.push((path.clone(), text));
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }

    let result = Validator::new(schema).validate(&combined, ValidationMode::Strict);
    for e in result.validation_errors() {
        let id = e.policy_id().to_string();
        let message = e.to_string();
        match origin.get(&id).and_then(|i| texts.get(*i)) {
            Some((path, text)) => {
                problems.push(located(path, text, e, &format!("policy `{id}`: {message}")))
            }
            None => problems.push(format!("{}: policy `{id}`: {message}", dir.display())),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    Ok(Loaded {
        policies: combined,
        files: files.len(),
    })
}
