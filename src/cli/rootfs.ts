/**
 * `capsule rootfs build` and `capsule rootfs check`: flags to options, results to lines and exit
 * statuses. The work is rootfs-tools'.
 *
 * Bad flags throw InvalidArgumentError (commander prints one line); build and check failures throw
 * a RootfsError, a CapsuleError whose message names the file and what to do.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import type { BuildResult } from '../../rootfs-tools/build.js';
import { PROFILE_NAMES, PROFILES } from '../../rootfs-tools/profiles.js';
import { formatSize } from '../../rootfs-tools/progress.js';
import { stderr, stdout } from './streams.js';

export { RootfsError } from '../../rootfs-tools/errors.js';

/** Where the commands write; tests pass their own. */
export interface RootfsIo {
  stdout: Pick<NodeJS.WriteStream, 'write'>;
  /** Progress bars are drawn here when it is a TTY. */
  stderr: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean };
}

interface BuildFlags {
  bin?: string[];
  package?: string[];
  include?: string[];
  profile?: string[];
  clean?: boolean;
  hardlink?: boolean;
  quiet?: boolean;
  json?: boolean;
  includeGpuLibs?: boolean;
  gpuRoot?: string[];
  ldLibraryPath?: string;
}

interface CheckFlags {
  run?: boolean;
  json?: boolean;
  quiet?: boolean;
  ldLibraryPath?: string;
}

function nonEmptyPath(what: string): (value: string, previous: string[] | undefined) => string[] {
  return (value, previous) => {
    if (value.trim() === '') throw new InvalidArgumentError(`${what} must not be empty`);
    return [...(previous ?? []), value];
  };
}

function profileName(value: string, previous: string[] | undefined): string[] {
  const names = value.split(',').map((v) => v.trim());
  for (const name of names) {
    if (!PROFILE_NAMES.includes(name)) {
      throw new InvalidArgumentError(`unknown profile '${name}'; choose from ${PROFILE_NAMES.join(', ')}`);
    }
  }
  return [...(previous ?? []), ...names];
}

/** The human summary of a build, a few lines. */
export function formatBuildSummary(r: BuildResult): string[] {
  const secs = (r.durationMs / 1000).toFixed(1);
  const lines = [
    `rootfs ${r.dir}: added ${r.added.files} files (${formatSize(r.added.bytes)}` +
      `${r.added.hardlinks ? `, ${r.added.hardlinks} hard links` : ''}), ${r.added.symlinks} symlinks, ` +
      `${r.added.dirs} directories; ${r.unchanged} already up to date; ` +
      `what was asked for is ${r.total.files} files, ${formatSize(r.total.bytes)} (${secs} s)`,
  ];
  for (const p of r.programs) {
    const what = p.isScript
      ? `script for ${p.interpreter}`
      : p.isStatic
        ? 'static'
        : `${p.libraries.length} ${p.libraries.length === 1 ? 'library' : 'libraries'}`;
    lines.push(`  ${p.path}: ${what}`);
  }
  if (r.packages.length > 0) {
    const shown = r.packages.slice(0, 8).map((p) => `${p.name} (${p.files})`);
    const more = r.packages.length > 8 ? ` and ${r.packages.length - 8} more` : '';
    lines.push(`  packages: ${shown.join(', ')}${more}`);
  }
  for (const inc of r.includes) {
    lines.push(`  ${inc.path}: ${inc.files} files, ${inc.elfFiles} ELF`);
  }
  if (r.gpu)
    lines.push(`  GPU: ${r.gpu.libraries.length} driver libraries, ${r.gpu.binaries.length} utilities`);
  if (r.strippedSetid.length) lines.push(`  setuid/setgid bits stripped from ${r.strippedSetid.join(', ')}`);
  return lines;
}

/** Adds `rootfs build` and `rootfs check` to the capsule command. */
export function registerRootfsCommands(
  program: Command,
  /* Getters: the streams are wrapped only when a rootfs command writes (src/cli/streams.ts). */
  io: RootfsIo = {
    get stdout() {
      return stdout();
    },
    get stderr() {
      return stderr();
    },
  },
): void {
  const rootfs = program
    .command('rootfs')
    .summary('build or check a minimal rootfs made of host programs')
    .description(
      'Build a directory to use as a sandbox root from programs installed on this host: each ' +
        'program with its ELF interpreter and every library it loads, found by reading the ELF ' +
        'files the way the dynamic loader searches (DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, ' +
        'the ld.so cache, the default directories). No program is ever run to find its libraries.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  capsule rootfs build ./box --bin /bin/sh --bin /usr/bin/python3 --include /usr/lib/python3.11\n' +
        '  capsule rootfs build ./judge --profile c,cpp,python3\n' +
        '  capsule rootfs check ./box\n' +
        '  capsule run ./box /usr/bin/python3 -c "print(6*7)"',
    );

  rootfs
    .command('build')
    .summary('add programs, trees and profiles to a rootfs')
    .description(
      'Add programs (with their libraries and interpreters), trees and profiles to DIR, at the same ' +
        'paths as on the host, plus /etc/passwd, /etc/group (root, nobody 65534), /etc/nsswitch.conf ' +
        'and empty /proc, /sys, /dev, /tmp (1777). Building again only adds what changed.\n\n' +
        'Program names without a slash are looked up in /usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin ' +
        '(not your PATH, which may hold shims). A script brings its #! interpreter.\n\n' +
        'A missing program or library stops the build with the file named and DIR unchanged.',
    )
    .argument('<dir>', 'the rootfs directory (created when missing)')
    .addOption(
      new Option(
        '--bin <path>',
        'a program to add: a path, or a name looked up in the system directories; repeatable',
      ).argParser(nonEmptyPath('--bin')),
    )
    .addOption(
      new Option(
        '--include <path>',
        'a file or tree to copy as it is (its ELF files get their libraries); repeatable',
      ).argParser(nonEmptyPath('--include')),
    )
    .addOption(
      new Option(
        '--package <name>',
        "an installed Debian package to add whole, with the packages it depends on (from dpkg's lists, no download); repeatable",
      ).argParser(nonEmptyPath('--package')),
    )
    .addOption(
      new Option(
        '--profile <name>',
        `a language profile: ${PROFILE_NAMES.join(', ')}; repeatable or comma-separated`,
      ).argParser(profileName),
    )
    .option('--clean', 'start over: build a fresh rootfs and swap it in place of DIR')
    .option('--hardlink', 'hard-link host files instead of copying when DIR is on the same file system')
    .option(
      '--include-gpu-libs',
      "add the NVIDIA driver's user-space libraries (libcuda, libnvidia-ml, ...) and nvidia-smi",
    )
    .addOption(
      new Option(
        '--gpu-root <dir>',
        'with --include-gpu-libs: look for the driver libraries here instead of the ld.so cache; repeatable',
      ).argParser(nonEmptyPath('--gpu-root')),
    )
    .option(
      '--ld-library-path <dirs>',
      'the LD_LIBRARY_PATH the programs will run with (colon-separated), searched as the loader would',
    )
    .option('-q, --quiet', 'print nothing on success (no progress bar, no summary)')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nProfiles:\n' +
        PROFILE_NAMES.map((n) => `  ${n.padEnd(8)} ${PROFILES[n]?.description ?? ''}`).join('\n') +
        '\n\nExamples:\n' +
        '  capsule rootfs build ./box --bin /bin/sh --bin /usr/bin/python3 --include /usr/lib/python3.11\n' +
        '  capsule rootfs build ./box --profile c,cpp --hardlink\n' +
        '  capsule rootfs build ./box --package python3 --package default-jdk-headless\n' +
        '  capsule rootfs build ./box --clean --profile python3 --json\n' +
        '  capsule rootfs build ./gpu-box --bin ./model-server --include /opt/cuda/lib64 --include-gpu-libs\n' +
        "  capsule run ./box /usr/bin/python3 -c 'print(6*7)'",
    )
    .action(async (dir: string, flags: BuildFlags) => {
      /* Loaded when used: `capsule run` should not pay for the rootfs builder at start-up. */
      const { buildRootfs } = await import('../../rootfs-tools/build.js');
      const { createProgressBar } = await import('../../rootfs-tools/progress.js');
      // The bar draws only on a TTY (createProgressBar checks), never with --quiet or --json.
      const bar = flags.quiet || flags.json ? null : createProgressBar(io.stderr as NodeJS.WriteStream);
      let result: BuildResult;
      try {
        result = await buildRootfs({
          dir,
          programs: flags.bin,
          packages: flags.package,
          include: flags.include,
          profile: flags.profile,
          clean: flags.clean === true,
          hardlink: flags.hardlink === true,
          gpu: flags.includeGpuLibs === true || (flags.gpuRoot ?? []).length > 0,
          gpuRoots: flags.gpuRoot,
          ldLibraryPath: flags.ldLibraryPath,
          onProgress: bar ? (p) => bar.update(p) : undefined,
        });
      } finally {
        bar?.done();
      }
      if (flags.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (!flags.quiet) io.stdout.write(`${formatBuildSummary(result).join('\n')}\n`);
    });

  rootfs
    .command('check')
    .summary('list missing libraries and interpreters in a rootfs')
    .description(
      "For every ELF file in DIR, replay the loader's search inside DIR (its own ld.so cache and " +
        'directories) and list each missing library or ELF interpreter. Executable scripts whose #! ' +
        'interpreter is missing are listed as warnings.\n\n' +
        'Exit status: 0 when nothing is missing, 1 when something is.',
    )
    .argument('<dir>', 'the rootfs directory')
    .argument('[command...]', 'with --run: the program to run in DIR and its arguments')
    .option(
      '--run',
      'run COMMAND once in a sandbox on DIR (capsule run, traced with strace) and list the paths it ' +
        'looked for and did not find; put -- before COMMAND when its options are also check options',
    )
    .allowUnknownOption()
    .option('--ld-library-path <dirs>', 'the LD_LIBRARY_PATH the programs will run with (paths inside DIR)')
    .option('-q, --quiet', 'print only problems')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n  capsule rootfs check ./box\n  capsule rootfs check ./box --json | jq .problems\n' +
        "  capsule rootfs check ./box --run /usr/bin/python3 -c 'import json'",
    )
    .action(async (dir: string, command: string[], flags: CheckFlags) => {
      if (flags.run) {
        if (command.length === 0) throw new InvalidArgumentError('--run needs a program: --run PROG ARGS');
        const { runAndTrace } = await import('./rootfs-run.js');
        const r = await runAndTrace(dir, command, (chunk, stream) =>
          (stream === 'stdout' && !flags.json ? io.stdout : io.stderr).write(chunk),
        );
        if (flags.json) io.stdout.write(`${JSON.stringify({ dir, command, ...r }, null, 2)}\n`);
        else {
          for (const n of r.notFound) io.stdout.write(`not found: ${n.path} (${n.syscall}: ${n.errno})\n`);
          io.stdout.write(
            `${command[0]} in ${dir}: exited ${r.exitCode}; looked for ${r.notFound.length} paths that are not there ` +
              '(a program probes for optional files too: the ones that matter are those its error names)\n',
          );
        }
        if (r.exitCode !== 0) process.exitCode = 1;
        return;
      }
      if (command.length > 0)
        throw new InvalidArgumentError(
          `unexpected ${command.join(' ')}: to run a program in the rootfs, use --run PROG ARGS`,
        );
      const { checkRootfs, formatProblems } = await import('../../rootfs-tools/check.js');
      const result = await checkRootfs(dir, { ldLibraryPath: flags.ldLibraryPath });
      if (flags.json) {
        io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        for (const line of formatProblems(result.problems)) io.stdout.write(`${line}\n`);
        if (!flags.quiet) {
          for (const line of formatProblems(result.warnings)) io.stdout.write(`warning: ${line}\n`);
          io.stdout.write(
            `rootfs ${result.dir}: ${result.elfFiles} ELF files, ${result.scripts} scripts, ` +
              `${result.problems.length} missing${result.warnings.length ? `, ${result.warnings.length} warnings` : ''}\n`,
          );
        }
      }
      if (result.problems.length > 0) process.exitCode = 1;
    });
}
