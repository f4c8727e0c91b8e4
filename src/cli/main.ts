/**
 * `visor`: the command line. Speaks only the public API (api/); the module graph is kept small
 * so a round trip stays well under 150 ms: commands load their code when they run.
 */
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import type * as CommanderModule from 'commander';
// commander is CommonJS: require() skips the ESM loader's CJS export scan (~20 ms a run).
const { Command, CommanderError, Option } = createRequire(import.meta.url)('commander') as typeof CommanderModule;
type Command = CommanderModule.Command;
import { EXIT, EXIT_CODES_HELP } from './exit-codes.js';
import { reportError } from './output.js';

/** Runs an action, turning errors into `error:`/`hint:` lines and an exit code. */
function run<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<number | void>>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const action = await load();
      process.exitCode = (await action(...args)) ?? EXIT.ok;
    } catch (error) {
      process.exitCode = reportError(error);
    }
  };
}

const vm = () => import('./commands/vm.js');
const other = () => import('./commands/misc.js');
const disk = () => import('./commands/disk.js');
const vmDisk = () => import('./commands/vm-disk.js');

function json(command: Command): Command {
  return command.option('--json', 'print JSON for scripts instead of text for people');
}

export function buildProgram(): Command {
  const program = new Command('visor')
    .description('Visor: virtual machines on this Linux host (QEMU inside, Hyper-V-like outside).')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      `
The daemon (visord) starts on demand on $VISOR_RUN/visord.sock; VISOR_HOME and VISOR_RUN select an
isolated instance. VISOR_URL (with VISOR_TOKEN) talks to a daemon over TCP instead.
Sizes take units: 512M, 2G, 1.5T.
${EXIT_CODES_HELP}`,
    );

  program
    .command('daemon')
    .description('run the daemon (visord) in the foreground')
    .option('--listen <host:port>', 'also serve the API and the web Manager on TCP (bearer token in $VISOR_HOME/api-token)')
    .option('--debug', 'log one line per request')
    .action(run(async () => (await other()).daemon));

  const host = program.command('host').description('the host');
  json(host.command('info').description('what this host offers: accelerator, processors, memory, QEMU')).action(
    run(async () => (await other()).hostInfo),
  );
  json(
    host
      .command('stop-vms')
      .description('the host\'s shutdown step: each running VM\'s automatic stop action (save, shut down, turn off); packaging/systemd runs it'),
  ).action(run(async () => (await other()).hostStopVms));

  const image = program.command('image').description('the image library');
  json(image.command('list').description('images VMs can be created from')).action(run(async () => (await other()).imageList));

  const vms = program.command('vm').description('virtual machines');
  json(
    vms
      .command('create')
      .description('create a VM')
      .argument('<name>', 'the new VM\'s name')
      .option('--image <image>', 'its first disk comes from this image (see "visor image list"), or a template disk by path or URL')
      .option('--differencing', 'make the first disk a differencing child of the image (nothing copied; the image is only read)')
      .option('--location <folder>', 'the folder the VM lives in (new or empty; a share too); default under $VISOR_HOME')
      .option('--cpus <n>', 'virtual processors')
      .option('--memory <size>', 'startup memory, e.g. 512M or 2G')
      .addOption(new Option('--generation <n>', '1: BIOS, IDE boot; 2: UEFI, SCSI boot').choices(['1', '2']))
      .option('--disk-size <size>', 'with no image: size of a new blank VHDX boot disk, e.g. 8G')
      .option('--dvd <iso>', 'insert this ISO in the DVD drive')
      .option('--resolution <WxH>', 'display resolution, e.g. 1024x768')
      .option('--notes <text>', 'free text for people'),
  ).action(run(async () => (await vm()).create));
  json(vms.command('list').description('list VMs')).action(run(async () => (await vm()).list));
  json(vms.command('show').description('show a VM').argument('<name>')).action(run(async () => (await vm()).show));
  json(
    vms
      .command('set')
      .description('change a VM\'s settings (hardware changes need it off)')
      .argument('<name>')
      .option('--name <new-name>', 'rename it')
      .option('--cpus <n>', 'virtual processors')
      .option('--memory <size>', 'startup memory, e.g. 1G')
      .option('--dvd <iso|none>', 'insert an ISO, or "none" to eject')
      .option('--resolution <WxH>', 'display resolution, e.g. 1280x1024')
      .option('--boot-order <list>', 'comma-separated: disk,dvd,network')
      .addOption(new Option('--secure-boot <on|off>', 'UEFI secure boot (generation 2)').choices(['on', 'off']))
      .addOption(new Option('--auto-start <action>', 'when the host starts').choices(['nothing', 'start-if-running', 'start']))
      .addOption(new Option('--auto-stop <action>', 'when the host stops').choices(['save', 'turn-off', 'shut-down']))
      .option('--notes <text>', 'free text for people'),
  ).action(run(async () => (await vm()).set));
  json(vms.command('start').description('start a VM (or resume it from its saved state)').argument('<name>')).action(
    run(async () => (await vm()).start),
  );
  json(
    vms
      .command('stop')
      .description('shut a VM down through the guest; --force turns it off')
      .argument('<name>')
      .option('--force', 'turn it off now; with --timeout, turn it off if the guest has not shut down by then')
      .option('--timeout <seconds>', 'how long to wait for the guest to shut down (default 60)'),
  ).action(run(async () => (await vm()).stop));
  for (const [name, description] of [
    ['save', 'save a VM\'s memory to disk and stop it'],
    ['pause', 'pause a running VM'],
    ['resume', 'resume a paused VM'],
    ['restart', 'reset a running VM'],
  ] as const) {
    json(vms.command(name).description(description).argument('<name>')).action(run(async () => (await vm())[name]));
  }
  json(
    vms
      .command('delete')
      .description('delete a VM and the disks created with it')
      .argument('<name>')
      .option('--force', 'turn it off first if it is running'),
  ).action(run(async () => (await vm()).remove));
  json(
    vms
      .command('exec')
      .description('run a command in the guest; prints its output and exits with its exit code')
      .argument('<name>')
      .argument('<command...>', 'the command and its arguments, after --')
      .option('--timeout <seconds>', 'how long to wait for the command (default 60)')
      .option('--stdin', 'send this command\'s standard input to the guest command'),
  ).action(run(async () => (await vm()).exec));
  vms
    .command('screenshot')
    .description('save the guest\'s screen as PNG')
    .argument('<name>')
    .argument('<file>', 'where to write the PNG')
    .action(run(async () => (await vm()).screenshot));
  vms
    .command('serial')
    .description('attach this terminal to the VM\'s serial console (Ctrl-] detaches)')
    .argument('<name>')
    .action(run(async () => (await import('./commands/serial.js')).serial));

  const disks = program.command('disk').description('disk files: vhdx (default), vhd, qcow2, raw');
  json(
    disks
      .command('new')
      .description('create a disk (dynamic unless --fixed), or a differencing child with --parent')
      .argument('<path>', 'the new file; its extension gives the format unless --format')
      .option('--size <size>', 'virtual size, e.g. 8G')
      .addOption(new Option('--format <format>', 'disk format').choices(['vhdx', 'vhd', 'qcow2', 'raw']))
      .option('--fixed', 'allocate all of it now')
      .option('--parent <path>', 'make a differencing disk on top of this one'),
  ).action(run(async () => (await disk()).newDisk));
  json(disks.command('inspect').description('format, sizes, block size, parent chain and health').argument('<path>')).action(
    run(async () => (await disk()).inspect),
  );
  json(
    disks
      .command('convert')
      .description('copy a disk (a differencing chain flattened) into a new standalone disk')
      .argument('<source>')
      .argument('<destination>', 'the new file; its extension gives the format unless --format')
      .addOption(new Option('--format <format>', 'disk format').choices(['vhdx', 'vhd', 'qcow2', 'raw'])),
  ).action(run(async () => (await disk()).convert));
  json(disks.command('resize').description('change a disk\'s virtual size').argument('<path>').option('--size <size>', 'the new size, e.g. 16G')).action(
    run(async () => (await disk()).resize),
  );
  json(disks.command('compact').description('give back the space of all-zero blocks').argument('<path>')).action(run(async () => (await disk()).compact));
  json(disks.command('merge').description('write a differencing disk into its parent, then delete it').argument('<path>')).action(
    run(async () => (await disk()).merge),
  );

  const vmDisks = vms.command('disk').description('a VM\'s disks');
  json(
    vmDisks
      .command('add')
      .description('attach a disk: an existing one (--path) or a new one (--size); hot-added on SCSI/virtio while running')
      .argument('<name>')
      .option('--path <path>', 'an existing disk file, or a host block device with --passthrough')
      .option('--size <size>', 'a new empty disk of this size, e.g. 1G, in the VM\'s folder')
      .addOption(new Option('--format <format>', 'format of the new disk (default vhdx)').choices(['vhdx', 'vhd', 'qcow2', 'raw']))
      .addOption(new Option('--controller <type>', 'default scsi').choices(['ide', 'scsi', 'virtio']))
      .option('--controller-number <n>', 'which controller (default: the first with a free slot)')
      .option('--location <n>', 'which slot on it (default: the first free one)')
      .option('--passthrough', 'give the host block device at --path whole to the VM')
      .option('--read-only', 'the guest cannot write it'),
  ).action(run(async () => (await vmDisk()).add));
  json(vmDisks.command('remove').description('detach a disk (the file is kept)').argument('<name>').argument('<disk-id>')).action(
    run(async () => (await vmDisk()).remove),
  );
  json(vmDisks.command('list').description('the VM\'s disks').argument('<name>')).action(run(async () => (await vmDisk()).list));
  json(
    vms
      .command('move-storage')
      .description('move a VM\'s disks, configuration and saved state to another folder, live while it runs')
      .argument('<name>')
      .option('--to <folder>', 'the destination folder (new or empty; with --disks-only, any folder)')
      .option('--disks-only', 'move only the disks; the configuration and state stay in the VM\'s home folder')
      .addOption(new Option('--format <format>', 'convert the disks on the way').choices(['vhdx', 'vhd', 'qcow2', 'raw'])),
  ).action(run(async () => (await vmDisk()).moveStorage));
  const dvd = vms.command('dvd').description('a VM\'s DVD drive');
  json(dvd.command('set').description('insert an ISO (live while running)').argument('<name>').argument('<iso>')).action(
    run(async () => (await vmDisk()).dvdSet),
  );
  json(dvd.command('eject').description('eject the DVD (live while running)').argument('<name>')).action(run(async () => (await vmDisk()).dvdEject));

  const job = program.command('job').description('long operations');
  json(job.command('list').description('running and recent jobs')).action(run(async () => (await other()).jobList));
  json(job.command('show').description('show a job').argument('<id>')).action(run(async () => (await other()).jobShow));
  json(job.command('cancel').description('cancel a job').argument('<id>')).action(run(async () => (await other()).jobCancel));

  for (const command of [program, ...allCommands(program)]) command.exitOverride();
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((c) => [c, ...allCommands(c)]);
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      if (error.code === 'commander.executeSubCommandAsync') return EXIT.failed;
      // A group without a subcommand shows its help: that is usage.
      return EXIT.usage;
    }
    return reportError(error);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
}

/** Run as a program (bin/visor execs this file). */
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => {
    // Leave once stdout and stderr are written (a pipe takes 64 KiB at a time and the rest
    // asynchronously), but do not wait for open handles such as a keep-alive socket.
    process.exitCode = code;
    let pending = 2;
    const leave = (): void => {
      if (--pending === 0) process.exit(code);
    };
    process.stdout.write('', leave);
    process.stderr.write('', leave);
  });
}
