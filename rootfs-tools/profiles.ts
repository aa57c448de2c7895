/**
 * Profiles: what a language's toolchain needs in a rootfs, as data.
 *
 * A profile lists programs (looked up in {@link PROFILE_BIN_DIRS}; their libraries follow by
 * themselves) and include patterns (files or trees copied as they are; ELF files inside them get
 * their libraries too; linker scripts such as libc.so bring the files they name). Patterns may use
 * `*`, `?` and `[...]` within a path component and are matched against the host. Each item names
 * the Debian package that provides it, for the error when the host lacks it.
 */

/** A program a profile needs, by command name. */
export interface ProfileProgram {
  /** Command name, looked up in {@link PROFILE_BIN_DIRS} in order (`gcc`, `sh`). */
  bin: string;
  /** The Debian/Ubuntu package that provides it, named in the error when it is missing. */
  package: string;
}

/** Files or trees a profile needs. */
export interface ProfileInclude {
  /** An absolute glob pattern; every match is included, and at least one must exist unless optional. */
  path: string;
  /** The package that provides it. */
  package: string;
  /** Absolute glob patterns of subtrees to leave out (another profile may add them). */
  exclude?: string[];
  /** Missing on the host is fine (another distribution's layout, an extra). @default false */
  optional?: boolean;
}

export interface Profile {
  description: string;
  /** Profiles whose items are added first. */
  extends?: string[];
  /**
   * Installed Debian packages whose every file is added, with the packages they depend on (see
   * dpkg.ts): for runtimes that open or execute more than their ELF closure (a JDK's lib/modules,
   * Go's tools and standard library sources). @default []
   */
  packages?: string[];
  programs: ProfileProgram[];
  include: ProfileInclude[];
}

/** Where profile programs are looked up, in order (a fixed list: the builder's PATH is not used). */
export const PROFILE_BIN_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];

const coreutils = [
  'cat',
  'cp',
  'mv',
  'rm',
  'ls',
  'ln',
  'mkdir',
  'rmdir',
  'chmod',
  'touch',
  'stat',
  'du',
  'df',
  'echo',
  'printf',
  'head',
  'tail',
  'wc',
  'sort',
  'uniq',
  'cut',
  'tr',
  'tee',
  'paste',
  'join',
  'fold',
  'tac',
  'nl',
  'comm',
  'od',
  'env',
  'id',
  'whoami',
  'groups',
  'true',
  'false',
  'test',
  '[',
  'expr',
  'seq',
  'sleep',
  'date',
  'basename',
  'dirname',
  'pwd',
  'readlink',
  'realpath',
  'mktemp',
  'uname',
  'nproc',
  'yes',
  'timeout',
  'dd',
  'md5sum',
  'sha256sum',
  'base64',
];

export const PROFILES: Readonly<Record<string, Profile>> = {
  sh: {
    description: 'POSIX shell (dash as /bin/sh) with coreutils, grep and sed',
    programs: [
      { bin: 'sh', package: 'dash' },
      ...coreutils.map((bin) => ({ bin, package: 'coreutils' })),
      { bin: 'grep', package: 'grep' },
      { bin: 'sed', package: 'sed' },
    ],
    include: [],
  },
  c: {
    description: 'C compiler: gcc driver, cc1, as, ld, crt files, libc headers and libraries, libgcc',
    extends: ['sh'],
    programs: [
      { bin: 'gcc', package: 'gcc' },
      { bin: 'cc', package: 'gcc' },
      { bin: 'as', package: 'binutils' },
      { bin: 'ld', package: 'binutils' },
    ],
    include: [
      // cc1, collect2, lto-wrapper, crtbegin*.o, libgcc.a, the compiler's own headers.
      { path: '/usr/lib/gcc/*/*', package: 'gcc', exclude: ['/usr/lib/gcc/*/*/cc1plus'] },
      { path: '/usr/libexec/gcc/*/*', package: 'gcc', optional: true },
      {
        path: '/usr/include',
        package: 'libc6-dev',
        exclude: ['/usr/include/c++', '/usr/include/*/c++', '/usr/include/python3*'],
      },
      { path: '/usr/lib/*-linux-gnu/*crt1.o', package: 'libc6-dev' },
      { path: '/usr/lib/*-linux-gnu/crt[in].o', package: 'libc6-dev' },
      // libc.so and libm.so are linker scripts; the files they name come with them.
      { path: '/usr/lib/*-linux-gnu/libc.so', package: 'libc6-dev' },
      { path: '/usr/lib/*-linux-gnu/libm.so', package: 'libc6-dev' },
      { path: '/usr/lib/*-linux-gnu/lib[cm].a', package: 'libc6-dev' },
      { path: '/usr/lib/*-linux-gnu/libmvec.a', package: 'libc6-dev', optional: true },
      { path: '/usr/lib/*-linux-gnu/libgcc_s.so.1', package: 'libgcc-s1' },
    ],
  },
  cpp: {
    description: 'C++ compiler: the c profile plus g++, cc1plus, libstdc++ and its headers',
    extends: ['c'],
    programs: [
      { bin: 'g++', package: 'g++' },
      { bin: 'c++', package: 'g++' },
    ],
    include: [
      { path: '/usr/lib/gcc/*/*/cc1plus', package: 'g++' },
      { path: '/usr/include/c++', package: 'libstdc++-dev (apt-get install g++)' },
      { path: '/usr/include/*/c++', package: 'libstdc++-dev (apt-get install g++)' },
      { path: '/usr/lib/*-linux-gnu/libstdc++.so.6', package: 'libstdc++6' },
    ],
  },
  python3: {
    description: 'Python 3 interpreter and its standard library (extension modules included)',
    programs: [{ bin: 'python3', package: 'python3-minimal' }],
    include: [
      {
        path: '/usr/lib/python3.[0-9]*',
        package: 'libpython3-stdlib',
        exclude: ['/usr/lib/python3.*/test', '/usr/lib/python3.*/idlelib', '/usr/lib/python3.*/tkinter'],
      },
    ],
  },
  java: {
    description:
      'Java: the JDK (javac, java and its lib/modules) from default-jdk-headless and its dependencies',
    extends: ['sh'],
    packages: ['default-jdk-headless'],
    programs: [
      { bin: 'java', package: 'default-jdk-headless' },
      { bin: 'javac', package: 'default-jdk-headless' },
    ],
    include: [],
  },
  go: {
    description: 'Go: go build with its tools and standard library, from golang-go and its dependencies',
    extends: ['sh'],
    packages: ['golang-go'],
    programs: [{ bin: 'go', package: 'golang-go' }],
    include: [],
  },
  node: {
    description: 'JavaScript: node, from the nodejs package and its dependencies',
    extends: ['sh'],
    packages: ['nodejs'],
    programs: [{ bin: 'node', package: 'nodejs' }],
    include: [],
  },
  rust: {
    description: 'Rust: rustc and its standard library from rustc and its dependencies, gcc as the linker',
    extends: ['c'],
    packages: ['rustc'],
    programs: [{ bin: 'rustc', package: 'rustc' }],
    include: [],
  },
};

/** Names of the built-in profiles. */
export const PROFILE_NAMES = Object.keys(PROFILES);
