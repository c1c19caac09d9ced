//! No two modules of a crate import each other, directly or around a loop.
//!
//! A cycle means neither module can be understood, tested or moved without the other; they
//! are one module in two files. The check reads every crate's sources (never writes them):
//! each `crate::a::b` and `super::x` path names the module it lands in (the longest prefix
//! that is a module file), an edge goes from the file's module to that module, and any
//! strongly connected set of two or more modules is a failure, listed with the files' edges.
//! A module using its ancestors or descendants is containment, not a cycle, and is left out:
//! `mod.rs` naming its children and children naming `super::Trait` is how Rust modules work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, from the workspace root; binaries under `src/bin` are crates of
/// their own (each one file) and are left out.
const ROOTS: &[&str] = &[
    "notary/src",
    "daemon/src",
    "cli/src",
    "tests/src",
    "vpiv/src",
    "proto/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") && dir.ends_with("src") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `backend/pkcs11/rv.rs` is `backend::pkcs11::rv`,
/// `backend/mod.rs` is `backend`, `lib.rs` and `main.rs` are the crate root (empty).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code without comments and string literals, so paths in prose and messages do not count.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths that follow `prefix::` in `code`, expanding one level of `{a, b::c}` groups:
/// `crate::{x, y::z}` gives `x` and `y::z`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let pattern = format!("{prefix}::");
    let mut start = 0;
    while let Some(at) = code[start..].find(&pattern) {
        let begin = start + at;
        start = begin + pattern.len();
        if begin > 0 && code[..begin].ends_with(|c: char| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &code[start..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident(c) || c == ':')
                    .collect();
                if !item.is_empty() {
                    found.push(item.split("::").map(str::to_owned).collect());
                }
            }
        } else {
            let path: String = rest
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            found.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    found
}

fn check_crate(workspace: &Path, root_name: &str) -> Vec<String> {
    let root = workspace.join(root_name);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&root, f), f.clone()))
        .collect();
    // The longest prefix of `path` that is a module.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let mut targets = Vec::new();
        for path in paths_after(&code, "crate") {
            targets.extend(resolve(&path));
        }
        // `super::` is relative to the module's parent (`super::super::` to its grandparent).
        for path in paths_after(&code, "super") {
            let mut base = module.clone();
            base.pop();
            let mut rest = path.as_slice();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            let mut full = base;
            full.extend(rest.iter().cloned());
            targets.extend(resolve(&full));
        }
        for target in targets {
            let related = target.starts_with(module) || module.starts_with(&target);
            if !related {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    strongly_connected(&modules.keys().cloned().collect::<Vec<_>>(), &edges)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let names: Vec<String> = scc
                .iter()
                .map(|m| format!("{root_name}: {}", m.join("::")))
                .collect();
            format!("import cycle: {}", names.join(" <-> "))
        })
        .collect()
}

/// Tarjan's strongly connected components.
fn strongly_connected(
    nodes: &[Vec<String>],
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> Vec<Vec<Vec<String>>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<Vec<String>, usize>,
        low: BTreeMap<Vec<String>, usize>,
        stack: Vec<Vec<String>>,
        on_stack: BTreeSet<Vec<String>>,
        next: usize,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit(s: &mut State, v: &Vec<String>) {
        s.index.insert(v.clone(), s.next);
        s.low.insert(v.clone(), s.next);
        s.next += 1;
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        let successors: Vec<Vec<String>> = s.edges.get(v).into_iter().flatten().cloned().collect();
        for w in successors {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.clone(), low);
            } else if s.on_stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for node in nodes {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cycles: Vec<String> = ROOTS
        .iter()
        .flat_map(|root| check_crate(workspace, root))
        .collect();
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}

#[test]
fn the_check_finds_a_cycle_and_ignores_containment() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("outer")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod outer;").unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::b::Thing; // crate::c in prose",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{a::Other, outer};").unwrap();
    std::fs::write(src.join("outer/mod.rs"), "mod inner; use inner::X;").unwrap();
    std::fs::write(
        src.join("outer/inner.rs"),
        "use super::Y; const S: &str = \"crate::a\";",
    )
    .unwrap();
    let cycles = check_crate(dir.path(), "src");
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].contains("src: a") && cycles[0].contains("src: b"),
        "{cycles:?}"
    );
}
