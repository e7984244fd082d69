"""Speed of the CCD featurizer on cubic CsPbBr3.

Featurizes N random configurations (default 31,000) of the 40-atom 2x2x2
supercell of cubic CsPbBr3 (a = 5.87 Å) with 7 pair orbits, 1 triplet orbit
and the PbBr6 octahedron, invariant polynomials up to order 4 (cluster- and
site-based features), and prints configurations per second and peak memory.

Random configurations: Gaussian displacements (``--amp`` Å per component) and
a random symmetric strain (``--strain``), generated chunk by chunk.

Usage::

    python benchmarks/ccd_speed.py [--n-configs 31000] [--chunk 256] [--threads 1] [--grad]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from pes_core.ccd import CCDFeaturizer, OrbitSpec
from pes_core.clusters import cubic_cspbbr3


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark; return the figures it prints."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-configs", type=int, default=31_000)
    p.add_argument("--chunk", type=int, default=256, help="configurations per batch")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--order", type=int, default=4, help="largest polynomial degree")
    p.add_argument("--metric", default="linear")
    p.add_argument("--amp", type=float, default=0.1, help="displacement std (Å)")
    p.add_argument("--strain", type=float, default=0.01, help="strain std")
    p.add_argument("--grad", action="store_true", help="also back-propagate (forces and cell gradient)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rss0 = _peak_rss_mib()

    t0 = time.perf_counter()
    specs = [OrbitSpec("pair", cutoff=8.0, index=i) for i in range(7)]
    specs += [OrbitSpec("triplet", cutoff=6.0, index=0), OrbitSpec("octahedron", center="Pb", ligand="Br")]
    feat = CCDFeaturizer(cubic_cspbbr3(5.87), 2, specs, metric=args.metric, max_order=args.order)
    t_build = time.perf_counter() - t0
    rss_build = _peak_rss_mib()

    print(f"featurizer built in {t_build:.2f} s ({feat.n_atoms} atoms, torch threads {args.threads})")
    for name in feat.orbit_names:
        print(f"  {name:28s} clusters {feat.n_clusters[name]:4d}  basis {feat.n_basis[name]:3d}")
    print(f"  site features: {feat.n_site_features}")

    gen = torch.Generator().manual_seed(args.seed)
    pos_ref, cell_ref = feat.reference_batch(1)
    t_gen = 0.0
    t_feat = 0.0
    n_done = 0
    n_values = 0
    checksum = 0.0
    while n_done < args.n_configs:
        b = min(args.chunk, args.n_configs - n_done)
        tg = time.perf_counter()
        eps = args.strain * torch.randn(b, 3, 3, generator=gen, dtype=torch.float64)
        f = torch.eye(3, dtype=torch.float64) + 0.5 * (eps + eps.transpose(1, 2))
        u = args.amp * torch.randn(b, feat.n_atoms, 3, generator=gen, dtype=torch.float64)
        pos = (pos_ref + u) @ f.transpose(1, 2)
        cell = cell_ref @ f.transpose(1, 2)
        tf = time.perf_counter()
        t_gen += tf - tg
        if args.grad:
            pos.requires_grad_(True)
            cell.requires_grad_(True)
            out = feat(pos, cell)
            e = sum(t.sum() for t in out.clusters.values()) + sum(t.sum() for t in out.sites.values())
            e.backward()
        else:
            with torch.no_grad():
                out = feat(pos, cell)
        t_feat += time.perf_counter() - tf
        n_values += sum(t.numel() for t in out.clusters.values()) + sum(t.numel() for t in out.sites.values())
        checksum += float(out.clusters["PbBr6_octahedron"][:, :, 0].detach().sum())
        n_done += b

    total = t_gen + t_feat
    peak = _peak_rss_mib()
    figures = {
        "n_configs": n_done,
        "featurize_s": t_feat,
        "generate_s": t_gen,
        "configs_per_s": n_done / t_feat,
        "configs_per_s_incl_generation": n_done / total,
        "peak_rss_mib": peak,
        "peak_rss_increase_mib": peak - rss_build,
        "rss_after_build_mib": rss_build,
    }
    mode = "features + backward" if args.grad else "features"
    print(f"{n_done} configurations ({mode}, chunk {args.chunk}): {t_feat:.2f} s featurizing, "
          f"{t_gen:.2f} s generating")
    print(f"throughput: {figures['configs_per_s']:.0f} configs/s "
          f"({figures['configs_per_s_incl_generation']:.0f} configs/s including generation)")
    print(f"feature values per configuration: {n_values // n_done}")
    print(f"peak memory (max RSS): {peak:.0f} MiB (at start {rss0:.0f} MiB, after build {rss_build:.0f} MiB, "
          f"increase while featurizing {figures['peak_rss_increase_mib']:.0f} MiB)")
    print(f"target 31,000 in < 30 s: {'met' if n_done >= 31_000 and total < 30 else 'NOT met'} "
          f"({total:.1f} s total)")
    print(f"checksum {checksum:.6e}")
    return figures


if __name__ == "__main__":
    main()
