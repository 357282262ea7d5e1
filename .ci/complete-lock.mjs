// Keeps package-lock.json usable by `npm ci` on a fresh machine.
//
// The npm registry this project installs from does not serve every platform build of packages
// with optional per-platform binaries (e.g. @biomejs/cli-android-arm64 answers 404), so `npm
// install` leaves those optional packages out of the lock file, and `npm ci` then refuses the
// lock as "not in sync" ("Missing: @biomejs/cli-darwin-x64@ from lock file"). This adds each
// missing optional platform package as an optional entry with its os/cpu, so npm ci accepts the
// lock and skips them on this platform (as it would had they been resolved). Idempotent.
//
// It runs after every npm command that changes node_modules here (`npm install`, `npm ci`: the
// root package's `dependencies` script, which npm runs once the lock file is written, and only
// for the project itself, never when the package is installed as a dependency: the packed
// package has no install script), and .ci/run runs it before `npm ci` too, so that a lock
// written with --ignore-scripts does not fail CI.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages ?? {};
const platform =
  /-(darwin|linux|win32|android|freebsd|openbsd|netbsd|sunos|aix)-(x64|arm64|arm|ia32|s390x|ppc64|riscv64|loong64|mips64el)(?:-(?:musl|gnu|msvc|eabi|gnueabihf))?$/;
let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ''}node_modules/${dep}`;
    if (packages[`node_modules/${dep}`] || packages[nested]) continue;
    const match = platform.exec(dep);
    if (!match) continue;
    packages[`node_modules/${dep}`] = {
      version: String(spec).replace(/^[\^~=]/, ''),
      cpu: [match[2]],
      optional: true,
      os: [match[1]],
    };
    added += 1;
  }
}
if (added > 0) {
  const sorted = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
  );
  lock.packages = sorted;
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(`complete-lock: added ${added} optional platform entries to package-lock.json`);
}
