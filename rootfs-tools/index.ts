/**
 * rootfs-tools: build a minimal rootfs from host programs, with every library and interpreter the
 * dynamic loader will look for, found by reading ELF files (never by running them).
 */
export { buildRootfs, MANIFEST_PATH } from './build.js';
export type { BuildOptions, BuildResult, BuildProgress } from './build.js';
export { checkRootfs, formatProblems } from './check.js';
export type { CheckOptions, CheckResult, CheckProblem } from './check.js';
export { packageClosure, packageFiles, readDpkgStatus, PACKAGE_EXCLUDES } from './dpkg.js';
export type { DpkgPackage, DpkgOptions } from './dpkg.js';
export { readElf, readElfInterpreter, readShebang, readShebangLine, isElf } from './elf.js';
export type { ElfInfo, Shebang } from './elf.js';
export { RootfsError } from './errors.js';
export type { RootfsErrorCode } from './errors.js';
export { findGpuLibraries, NVIDIA_LIBRARIES, NVIDIA_BINARIES } from './gpu.js';
export type { GpuOptions, GpuFiles } from './gpu.js';
export { readLdCache, parseLdCache, encodeLdCache } from './ldcache.js';
export type { LdCacheEntry } from './ldcache.js';
export type { ProgramReport, IncludeReport } from './plan.js';
export { PROFILES, PROFILE_NAMES } from './profiles.js';
export type { Profile, ProfileProgram, ProfileInclude } from './profiles.js';
export { resolveProfiles } from './profile.js';
export { createProgressBar, formatSize } from './progress.js';
export { Resolver } from './resolve.js';
export type { Closure, ResolvedObject, MissingDependency, ResolverOptions } from './resolve.js';
