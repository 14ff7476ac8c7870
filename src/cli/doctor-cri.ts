// Doctor: CRI settings that make containerd 2.1 pull without the transfer service (so no
// image verifier runs).
import { isTable, PLUGIN } from "../containerd/config.js";
import { criImagesConfig, type LoadedConfig } from "./containerd-config.js";
import type { Add } from "./doctor-finding.js";

function nonEmptyTable(v: unknown): boolean {
  return isTable(v) && Object.keys(v).length > 0;
}

export function checkCri(cfg: LoadedConfig, add: Add): void {
  const { table, origin } = criImagesConfig(cfg);
  const where = (k: string) => origin[k] ?? `[plugins."${PLUGIN.images}"] ${k}`;
  const bypass =
    "containerd pulls without the transfer service, so no image verifier runs for any kubelet pull";
  let found = 0;
  const flag = (id: string, message: string, fix: string) => {
    found++;
    add({ id, check: "cri", severity: "error", message: `${message}: ${bypass}`, fix });
  };
  if (table.use_local_image_pull === true)
    flag(
      "cri.use-local-image-pull",
      `${where("use_local_image_pull")} = true`,
      "remove use_local_image_pull (or set it to false)",
    );
  const registry = isTable(table.registry) ? table.registry : {};
  const regWhere = where("registry");
  if (nonEmptyTable(registry.mirrors))
    flag(
      "cri.registry-mirrors",
      `${regWhere}.mirrors is set`,
      `move mirrors to hosts.toml files under the registry config_path (e.g. /etc/containerd/certs.d/<host>/hosts.toml) and delete ${regWhere}.mirrors`,
    );
  if (nonEmptyTable(registry.configs))
    flag(
      "cri.registry-configs",
      `${regWhere}.configs is set`,
      `move TLS settings to hosts.toml (ca, client, skip_verify) and credentials to image pull secrets; delete ${regWhere}.configs`,
    );
  if (nonEmptyTable(registry.auths))
    flag(
      "cri.registry-auths",
      `${regWhere}.auths is set`,
      `use image pull secrets (or a credential file) instead; delete ${regWhere}.auths`,
    );
  if (table.discard_unpacked_layers === true)
    flag(
      "cri.discard-unpacked-layers",
      `${where("discard_unpacked_layers")} = true`,
      "remove discard_unpacked_layers (not supported with the transfer service)",
    );
  if ("max_concurrent_downloads" in table && table.max_concurrent_downloads !== 3)
    flag(
      "cri.max-concurrent-downloads",
      `${where("max_concurrent_downloads")} = ${JSON.stringify(table.max_concurrent_downloads)} (only 3, the default, keeps the transfer service)`,
      `remove it and set max_concurrent_downloads in [plugins."${PLUGIN.transfer}"] instead`,
    );
  if (table.image_pull_with_sync_fs === true)
    flag(
      "cri.image-pull-with-sync-fs",
      `${where("image_pull_with_sync_fs")} = true`,
      "remove image_pull_with_sync_fs",
    );
  if (table.disable_snapshot_annotations === false)
    flag(
      "cri.snapshot-annotations",
      `${where("disable_snapshot_annotations")} = false`,
      "remove it (default true); snapshotters that need the annotations are configured in the snapshotter plugin when the transfer service pulls",
    );
  if (found === 0)
    add({
      id: "cri.transfer",
      check: "cri",
      severity: "ok",
      message: "CRI pulls go through the transfer service (no setting forces local pulls)",
    });
}
