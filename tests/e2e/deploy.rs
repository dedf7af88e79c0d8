//! `deploy/` stays true: every YAML and TOML file parses, every actas configuration in it
//! passes `actas check`, every key and flag it uses exists, and the manifests keep the
//! properties operators rely on (replicas, probes, disruption budget, sandboxing).

use std::path::{Path, PathBuf};

use actas_e2e::*;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

fn files(ext: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, ext, out);
            } else if p.extension().is_some_and(|x| ext.iter().any(|e| x == *e)) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&deploy(), ext, &mut out);
    out.sort();
    out
}

fn yaml_docs() -> Vec<(PathBuf, Yaml)> {
    files(&["yaml", "yml"])
        .into_iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let docs =
                YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            docs.into_iter().map(move |d| (p.clone(), d))
        })
        .collect()
}

/// Rewrites an embedded configuration's paths into `dir`, where `check` can find real files.
fn runnable(toml_text: &str, dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    let (ok, _, err) = actas(
        Path::new("/none.toml"),
        &["certs", "dev", "--out", certs.to_str().unwrap()],
        None,
    );
    assert!(ok, "{err}");
    copy_dir(&repo_root().join("policies"), &dir.join("policies"));
    let mut doc: toml::Table = toml_text.parse().expect("TOML");
    let set = |doc: &mut toml::Table, section: &str, key: &str, value: String| {
        if let Some(t) = doc.get_mut(section).and_then(|s| s.as_table_mut()) {
            if t.contains_key(key) {
                t.insert(key.into(), toml::Value::String(value));
            }
        }
    };
    set(
        &mut doc,
        "tls",
        "cert",
        certs.join("server.pem").display().to_string(),
    );
    set(
        &mut doc,
        "tls",
        "key",
        certs.join("server.key").display().to_string(),
    );
    set(
        &mut doc,
        "assertion",
        "signing_key",
        certs.join("signing.key").display().to_string(),
    );
    set(
        &mut doc,
        "policy",
        "dir",
        dir.join("policies").display().to_string(),
    );
    // The database the example names (a server path or another host's PostgreSQL) is not
    // here: point it at the test PostgreSQL or a local SQLite file, keeping the backend.
    let url = doc
        .get("database")
        .and_then(|d| d.get("url"))
        .and_then(|u| u.as_str())
        .unwrap_or("")
        .to_owned();
    let local = if url.starts_with("postgres") {
        postgres_schema("deploy")
    } else {
        format!("sqlite://{}", dir.join("actas.db").display())
    };
    if let Some(t) = doc.get_mut("database").and_then(|s| s.as_table_mut()) {
        t.insert("url".into(), toml::Value::String(local));
    }
    let path = dir.join("actas.toml");
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

fn check(text: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = runnable(text, dir.path());
    let (ok, out, err) = actas(&config, &["check"], None);
    assert!(ok, "{what}: actas check failed: {err}{out}");
    // Check looks at the database and changes nothing: it does not create one.
    if !std::fs::read_to_string(&config)
        .unwrap()
        .contains("postgres://")
    {
        assert!(
            out.contains("not created yet; serve creates it"),
            "{what}: {out}"
        );
        assert!(
            !dir.path().join("actas.db").exists(),
            "{what}: check created the database"
        );
    }
}

#[test]
fn the_annotated_example_passes_actas_check() {
    check(
        &std::fs::read_to_string(deploy().join("actas.toml")).unwrap(),
        "deploy/actas.toml",
    );
}

#[test]
fn the_annotated_example_lists_every_key_actas_knows() {
    // Every key of the configuration model appears in the example (actas check rejects
    // unknown ones, so together they cover the model both ways).
    let example: toml::Table = std::fs::read_to_string(deploy().join("actas.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let keys: Vec<String> = example
        .iter()
        .flat_map(|(s, t)| {
            t.as_table()
                .unwrap()
                .keys()
                .map(move |k| format!("{s}.{k}"))
        })
        .collect();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for k in &keys {
        let key = k.split('.').nth(1).unwrap();
        assert!(
            readme.contains(key) || key.ends_with("_seconds"),
            "{k} is documented in the README"
        );
    }
    assert!(keys.len() >= 30, "{keys:?}");
}

#[test]
fn every_yaml_and_toml_file_parses() {
    assert!(!yaml_docs().is_empty());
    for p in files(&["toml"]) {
        let text = std::fs::read_to_string(&p).unwrap();
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn every_embedded_actas_configuration_passes_check() {
    let mut found = 0;
    for (path, doc) in yaml_docs() {
        // Kubernetes ConfigMaps (data."actas.toml") and compose configs (configs.*.content).
        let mut texts = Vec::new();
        if let Some(t) = doc["data"]["actas.toml"].as_str() {
            texts.push(t.to_owned());
        }
        if let Some(configs) = doc["configs"].as_hash() {
            for (_, c) in configs {
                if let Some(t) = c["content"].as_str() {
                    texts.push(t.to_owned());
                }
            }
        }
        for t in texts {
            found += 1;
            check(&t, &path.display().to_string());
        }
    }
    assert!(
        found >= 3,
        "the compose file and the ConfigMap carry configurations: {found}"
    );
}

#[test]
fn panel_flags_used_in_deploy_exist() {
    let out = std::process::Command::new(bin("actas-panel"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut used = 0;
    for p in files(&["yaml", "service"]) {
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices("actas-panel") {
            let rest = &text[i..text[i..].find('\n').map_or(text.len(), |n| i + n)];
            for flag in rest
                .split(|c: char| c == '"' || c.is_whitespace() || c == ',')
                .filter(|w| w.starts_with("--"))
            {
                used += 1;
                assert!(
                    help.contains(flag),
                    "{}: actas-panel has no {flag}",
                    p.display()
                );
            }
        }
    }
    assert!(used >= 3, "{used}");
    let panel_toml: toml::Table = std::fs::read_to_string(deploy().join("panel.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for key in panel_toml.keys() {
        assert!(
            help.contains(&format!(
                "--{}",
                key.replace('_', "-").trim_end_matches('s')
            )),
            "panel.toml key {key} has a flag"
        );
    }
}

#[test]
fn kubernetes_runs_three_probed_replicas_with_a_disruption_budget_keys_and_policies() {
    let docs: Vec<Yaml> = yaml_docs()
        .into_iter()
        .filter(|(p, _)| p.starts_with(deploy().join("kubernetes")))
        .map(|(_, d)| d)
        .collect();
    let kind = |k: &'static str| docs.iter().filter(move |d| d["kind"].as_str() == Some(k));
    let proxy = kind("Deployment")
        .find(|d| d["metadata"]["name"].as_str() == Some("actas"))
        .expect("the actas Deployment");
    assert_eq!(proxy["spec"]["replicas"].as_i64(), Some(3));
    let c = &proxy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/_actas/healthz")
    );
    assert!(matches!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/_actas/healthz" | "/_actas/readyz")
    ));
    assert!(kind("PodDisruptionBudget").next().is_some());
    assert!(kind("Service").any(|s| s["metadata"]["name"].as_str() == Some("actas")));
    let secret = kind("Secret").next().expect("a Secret");
    for k in ["signing.key", "server.pem", "server.key"] {
        assert!(
            !secret["stringData"][k].is_badvalue() || !secret["data"][k].is_badvalue(),
            "Secret holds {k}"
        );
    }
    let policies = kind("ConfigMap")
        .find(|d| d["metadata"]["name"].as_str() == Some("actas-policies"))
        .expect("policies ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in policies["data"].as_hash().unwrap() {
        std::fs::write(
            dir.path().join(name.as_str().unwrap()),
            body.as_str().unwrap(),
        )
        .unwrap();
    }
    // The ConfigMap's policies are a valid set and give the shipped tests' answers.
    copy_dir(
        &repo_root().join("policies/tests"),
        &dir.path().join("tests"),
    );
    let (ok, out, err) = actas(
        Path::new("/none.toml"),
        &["policy", "test", "--dir", dir.path().to_str().unwrap()],
        None,
    );
    assert!(ok, "{out}{err}");
}

#[test]
fn systemd_units_are_sandboxed() {
    for unit in files(&["service"]) {
        let text = std::fs::read_to_string(&unit).unwrap();
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "{}: {line}",
                unit.display()
            );
        }
        assert!(
            text.contains("DynamicUser=yes") || text.contains("\nUser="),
            "{}: runs unprivileged",
            unit.display()
        );
    }
    assert_eq!(files(&["service"]).len(), 2);
}

#[test]
fn the_top_level_layout_of_the_design_is_there() {
    let root = repo_root();
    for dir in ["proxy", "panel", "policies", "certs", "tests", "deploy"] {
        assert!(root.join(dir).is_dir(), "{dir}/ is missing");
    }
    let certs = std::fs::read_to_string(root.join("certs/README.md")).unwrap();
    assert!(
        certs.contains("actas certs dev"),
        "certs/README.md says how keys are made"
    );
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l.trim() == "/certs/dev"),
        "generated files are git-ignored"
    );
}
