//! `neutrino plugin new NAME`: a ready driver project, anywhere (outside this repository too),
//! depending by path on this install's SDK.

use std::path::{Path, PathBuf};

use neutrino::plugins::validate::driver_name_ok;

/// The SDK this binary was built with: `sdk/` beside `host/` in the source tree it was built
/// from (`CARGO_MANIFEST_DIR` at build time).
pub fn built_with_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk")
}

const TEMPLATES: [(&str, &str); 6] = [
    ("Cargo.toml", include_str!("plugin_template/Cargo.toml.in")),
    ("src/lib.rs", include_str!("plugin_template/lib.rs.in")),
    ("src/tests.rs", include_str!("plugin_template/tests.rs.in")),
    ("README.md", include_str!("plugin_template/README.md.in")),
    (
        "neutrino.toml",
        include_str!("plugin_template/neutrino.toml.in"),
    ),
    (".gitignore", include_str!("plugin_template/gitignore.in")),
];

/// Writes the project of driver `name` into `dir` (made if missing; refused if not empty),
/// with `sdk` as its `neutrino-sdk` path dependency. Returns the files written.
pub fn new_project(name: &str, dir: &Path, sdk: &Path) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(
        driver_name_ok(name),
        "{name:?} is not a driver name: a short token (at most 64 letters, digits, - and _), \
         what `mechanism_drivers` lists and the server loads from <name>.wasm"
    );
    let sdk = std::fs::canonicalize(sdk)
        .map_err(|e| anyhow::anyhow!("the SDK {}: {e} (pass --sdk DIR)", sdk.display()))?;
    let manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap_or_default();
    anyhow::ensure!(
        manifest.contains("name = \"neutrino-sdk\"") && sdk.join("wit/driver.wit").is_file(),
        "{} is not the neutrino-sdk crate (its Cargo.toml and wit/driver.wit): pass --sdk DIR, \
         the sdk/ directory of a Neutrino source tree",
        sdk.display()
    );
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: give a new or empty directory (--dir)",
            dir.display()
        );
    }
    let crate_name = format!("neutrino-driver-{name}");
    let replacements = [
        ("__CRATE__", crate_name.clone()),
        ("__LIB__", crate_name.replace('-', "_")),
        ("__STRUCT__", type_name(name)),
        ("__AGENT_TYPE__", format!("{name} agent")),
        (
            "__SDK__",
            toml::Value::String(sdk.display().to_string()).to_string(),
        ),
        ("__NAME__", name.to_string()),
    ];
    let mut written = Vec::new();
    for (file, template) in TEMPLATES {
        let text = replacements
            .iter()
            .fold(template.to_string(), |t, (from, to)| t.replace(from, to));
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The driver type's name: the name in CamelCase with `Driver` after it (`my-drv`:
/// `MyDrvDriver`), an identifier whatever the name's characters.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let ident = format!("{camel}Driver");
    if ident.starts_with(|c: char| c.is_ascii_digit()) || camel.is_empty() {
        format!("My{ident}")
    } else {
        ident
    }
}

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn type_names_are_identifiers() {
        assert_eq!(type_name("mydrv"), "MydrvDriver");
        assert_eq!(type_name("my-drv_x"), "MyDrvXDriver");
        assert_eq!(type_name("9lives"), "My9livesDriver");
        assert_eq!(type_name("_"), "MyDriver");
    }
}
