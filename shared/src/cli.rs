//! What the servers' command lines may not carry.

/// The first of `flags` that appears among `args` (as `--flag VALUE` or `--flag=VALUE`): a
/// secret there is visible to every user of the machine (`ps`, `/proc/*/cmdline`), so servers
/// refuse to start with one and take secrets from the environment or from files.
pub fn secret_flag(args: impl IntoIterator<Item = String>, flags: &[&str]) -> Option<String> {
    args.into_iter().find_map(|a| {
        let name = a.split('=').next().unwrap_or_default();
        flags.iter().find(|f| **f == name).map(|f| f.to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_flags_are_found_in_either_form() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let flags = ["--operator-key"];
        assert_eq!(super::secret_flag(args(&["b", "--operator-key", "x"]), &flags).as_deref(), Some("--operator-key"));
        assert_eq!(super::secret_flag(args(&["b", "--operator-key=x"]), &flags).as_deref(), Some("--operator-key"));
        assert_eq!(super::secret_flag(args(&["b", "--operator-keys", "--listen"]), &flags), None);
    }
}
