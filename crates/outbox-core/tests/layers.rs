//! The core's shape, checked from its sources: no module imports, directly
//! or through others, a module that imports it (the layers read basic
//! types → decisions → machines, and the drivers live in another crate);
//! no `async` code and no runtime.
//!
//! An edge is any `crate::<module>` path in a module's code (comments and
//! the `#[cfg(test)] mod tests` at the end of a file are not read: a test
//! may use anything).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `src/` with the modules its code names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for file in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = file.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let mut uses = BTreeSet::new();
        for module in crate_paths(&code_of(&text)) {
            if module != name && module != "lib" {
                uses.insert(module);
            }
        }
        graph.insert(name, uses);
    }
    graph.remove("lib");
    graph
}

/// The code of a source file: without comments, and without the test
/// module at its end.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The first segment of every `crate::…` path, `use crate::{a, b::c}`
/// groups included.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `outbox_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        at_start = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 && at_start {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                        continue;
                    }
                    if !item.is_empty() {
                        found.push(std::mem::take(&mut item));
                        at_start = false;
                    }
                }
            }
            if !item.is_empty() {
                found.push(item);
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                found.push(ident);
            }
        }
    }
    found
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn no_module_of_core_imports_one_that_imports_it() {
    let graph = edges();
    assert!(graph.len() > 10, "the sources were found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("an import circle in outbox-core: {}", cycle.join(" → "));
    }
}

#[test]
fn the_checker_finds_a_circle_and_reads_use_groups() {
    let code = "use crate::{alpha::A, beta::{B, C}, gamma};\nfn f() { crate::delta::g(); }\n";
    assert_eq!(crate_paths(code), ["alpha", "beta", "gamma", "delta"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    graph.get_mut("c").map(BTreeSet::clear);
    assert_eq!(find_cycle(&graph), None);
    let text = "use crate::x;\n// crate::y\n#[cfg(test)]\nmod tests {\n use crate::z;\n}\n";
    assert_eq!(crate_paths(&code_of(text)), ["x"]);
}

#[test]
fn core_has_no_async_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert!(!src.join("join.rs").exists(), "join.rs belongs to a driver");
    for file in std::fs::read_dir(&src).expect("src/ is readable") {
        let path = file.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let code = code_of(&text);
        for word in ["async fn", "async move", "async {", ".await", "impl Future"] {
            let found = code.match_indices(word).any(|(at, _)| {
                // a whole word: `.awaiting_token` is not `.await`
                !code[at + word.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            assert!(
                !found,
                "{}: `{word}` — outbox-core has no async code (the drivers do)",
                path.display()
            );
        }
    }
}
