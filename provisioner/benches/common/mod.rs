//! What the provisioner's benches share.

use std::path::Path;

/// Writes the synthesized `files` into `dir` as a templates directory whose manifest lists
/// only the stacks named in `keep` (the emulator cannot run the others).
pub fn write_templates(
    files: &[chrono_stacks::synth::File],
    dir: &Path,
    keep: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut manifest = serde_json::Value::Null;
    for f in files {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        if name == "manifest.json" {
            manifest = serde_json::from_str(&f.contents)?;
        } else {
            std::fs::write(dir.join(name), &f.contents)?;
        }
    }
    if let Some(stacks) = manifest.get_mut("stacks").and_then(|s| s.as_array_mut()) {
        stacks.retain(|s| s["stack"].as_str().is_some_and(|name| keep.contains(&name)));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(())
}
