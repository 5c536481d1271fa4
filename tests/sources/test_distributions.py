"""dist-info reading and RECORD-based attribution of libraries to distributions."""

from __future__ import annotations

from pathlib import Path

from helpers.site import FakeSite
from torch_abi_audit.sources.distributions import find_distributions, read_distribution
from torch_abi_audit.sources.packages import ListedLibraries, site_packages_sources


def test_distributions_of_the_fake_site(fake_site: FakeSite) -> None:
    dists = {d.name: d for d in find_distributions(fake_site.site)}
    assert set(dists) == {"brokenpkg", "fake_dist", "purepy", "torchish"}
    fake = dists["fake_dist"]
    assert fake.version == "1.2.3"
    assert fake.top_level == ("fakepkg", "fakepkg_extra", "fakepkg.libs")
    assert fake.library_files == {
        "fakepkg/_native.abi3.so",
        "fakepkg/lib/libplugin.so",
        "fakepkg_extra/libextra.so",
        "fakepkg.libs/libvendored-1a2b3c4d.so.1",
    }
    assert dists["torchish"].torch_requirements == ("torch==2.13.0",)
    assert dists["purepy"].library_files == frozenset()
    assert all(d.problem is None for d in dists.values())


def test_each_distribution_is_handed_on_as_soon_as_read(fake_site: FakeSite) -> None:
    # An environment scan starts on a distribution's libraries while the other RECORDs are
    # still unread: the callback sees every distribution once, the largest RECORD first, and
    # the result is the same as without it.
    seen: list[str] = []
    dists = find_distributions(fake_site.site, on_read=lambda d: seen.append(d.name))
    assert sorted(seen) == sorted(d.name for d in dists)
    assert dists == find_distributions(fake_site.site)
    sizes = {d.name: (d.metadata_dir / "RECORD").stat().st_size for d in dists}
    assert [sizes[name] for name in seen] == sorted(sizes.values(), reverse=True)
    # The head start: the libraries a RECORD lists that are where it says, under a budget
    # shared by every distribution.
    listed = ListedLibraries(fake_site.site)
    fake = next(d for d in dists if d.name == "fake_dist")
    started = listed(fake)
    assert {p.relative_to(fake_site.site).as_posix() for p in started} <= fake.library_files
    assert all(p.is_file() for p in started) and started
    budget = ListedLibraries(fake_site.site, limit=1)
    assert len(budget(fake)) == 1 and budget(fake) == []


def test_unreadable_metadata_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    broken = tmp_path / "broken-1.0.dist-info"
    broken.mkdir()
    (broken / "RECORD").write_text("broken/x.so,,\n")
    dist = read_distribution(broken)
    assert dist.problem is None  # RECORD is fine
    assert dist.library_files == {"broken/x.so"}
    assert dist.name == "broken"  # from the directory name
    assert dist.metadata.problem is not None
    assert dist.metadata.problem.startswith("unreadable METADATA")
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: Broken.Pkg\nVersion: 1.0\n")
    (broken / "RECORD").unlink()
    dist = read_distribution(broken)
    assert dist.problem is not None and dist.problem.startswith("unreadable RECORD")
    assert (dist.name, dist.version, dist.metadata.problem) == ("Broken.Pkg", "1.0", None)


def test_site_grouping_by_distribution(fake_site: FakeSite) -> None:
    sources, loose = site_packages_sources(fake_site.site)
    by_name = {s.name: s for s in sources}
    assert set(by_name) == {"brokenpkg", "fake_dist", "marker_pkg", "orphan", "torchish"}
    assert loose == []

    fake = by_name["fake_dist"]
    assert fake.metadata is not None and fake.metadata.version == "1.2.3"
    assert fake.root == fake_site.site  # libraries in three top-level directories
    files = [p for p in fake.libraries if isinstance(p, Path)]
    assert sorted(p.relative_to(fake_site.site).as_posix() for p in files) == [
        "fakepkg.libs/libvendored-1a2b3c4d.so.1",
        "fakepkg/_native.abi3.so",
        "fakepkg/lib/libplugin.so",
        "fakepkg_extra/libextra.so",
    ]

    orphan = by_name["orphan"]
    assert orphan.metadata is None
    assert orphan.root == fake_site.site / "orphan"
    assert [p.name for p in orphan.libraries] == ["liborphan.so"]

    torchish = by_name["torchish"]
    assert torchish.root == fake_site.site / "torchish"


def test_file_created_after_install_belongs_to_the_top_level_owner(
    fake_site: FakeSite, tmp_path: Path
) -> None:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(fake_site.site, site, symlinks=True)
    shutil.copyfile(site / "torchish" / "libtorchish.so", site / "torchish" / "libjit.so")
    sources, _ = site_packages_sources(site)
    torchish = next(s for s in sources if s.name == "torchish")
    assert sorted(p.name for p in torchish.libraries) == ["libjit.so", "libtorchish.so"]


def test_broken_metadata_of_an_owner_is_a_package_problem(
    fake_site: FakeSite, tmp_path: Path
) -> None:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(fake_site.site, site, symlinks=True)
    (site / "torchish-0.1.dist-info" / "METADATA").write_bytes(b"\xff\xfe garbage")
    (site / "purepy-1.0.dist-info" / "METADATA").unlink()  # owns no library: not looked at
    sources, loose = site_packages_sources(site)
    torchish = next(s for s in sources if s.name == "torchish")
    assert [p.reason.split(":")[0] for p in torchish.problems] == ["unreadable METADATA"]
    assert loose == []
