//! Architecture Invariant: only the data server writes balances. The business server must reach
//! the bank's state through the data server's API (`DataClient`), never by opening its store.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn business_code_never_opens_the_data_servers_store() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 5, "found the business sources");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable file");
        for forbidden in ["RedbStore", "redb::", "store::Store", "writer::", "Application::build(dataserver"] {
            assert!(!text.contains(forbidden), "{} uses `{forbidden}`: go through DataClient", file.display());
        }
    }
}
