//! What a component imports and exports, as `neutrino plugin inspect FILE` prints it: the
//! check `wasm-tools component wit` would be used for, with the host's own wasmtime, and each
//! import marked as a driver may or may not have it.

use std::fmt;

use serde::Serialize;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, types::ComponentInstance};
use wasmtime::{Config, Engine};

use super::contract;

/// One import or export: its name, what kind of item it is, and for an instance (an
/// interface) the names it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// An import, and whether the host lets a driver have it.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    #[serde(flatten)]
    pub item: Item,
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    pub imports: Vec<Import>,
    pub exports: Vec<Item>,
}

impl Interface {
    /// Every import is one a driver may have.
    pub fn imports_allowed(&self) -> bool {
        self.imports.iter().all(|i| i.allowed)
    }
}

/// Compiles the component (without instantiating it) and lists its imports and exports.
pub fn inspect(bytes: &[u8]) -> anyhow::Result<Interface> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component = Component::new(&engine, bytes)
        .map_err(|e| anyhow::anyhow!("not a loadable component: {e:#}"))?;
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, item)| Import {
            allowed: contract::import_allowed(name),
            item: describe(&engine, name, &item.ty),
        })
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, item)| describe(&engine, name, &item.ty))
        .collect();
    Ok(Interface { imports, exports })
}

fn describe(engine: &Engine, name: &str, item: &ComponentItem) -> Item {
    let (kind, items) = match item {
        ComponentItem::ComponentFunc(_) => ("func", vec![]),
        ComponentItem::CoreFunc(_) => ("core func", vec![]),
        ComponentItem::Module(_) => ("module", vec![]),
        ComponentItem::Component(_) => ("component", vec![]),
        ComponentItem::ComponentInstance(i) => ("instance", instance_items(engine, i)),
        ComponentItem::Type(_) => ("type", vec![]),
        ComponentItem::Resource(_) => ("resource", vec![]),
    };
    Item {
        name: name.to_string(),
        kind,
        items,
    }
}

/// The functions of an interface (types and resources are left out: they are the functions'
/// vocabulary).
fn instance_items(engine: &Engine, instance: &ComponentInstance) -> Vec<String> {
    instance
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
        .map(|(name, _)| name.to_string())
        .collect()
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in &self.imports {
            write!(f, "import {} ({})", i.item.name, i.item.kind)?;
            if !i.allowed {
                write!(f, "  FORBIDDEN: the host refuses a driver that imports it")?;
            }
            writeln!(f)?;
            for name in &i.item.items {
                writeln!(f, "    {name}")?;
            }
        }
        for e in &self.exports {
            writeln!(f, "export {} ({})", e.name, e.kind)?;
            for name in &e.items {
                writeln!(f, "    {name}")?;
            }
        }
        Ok(())
    }
}
