import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { formatSize, parseSize, VisorError, type VisorClient, type VmJob } from '../../api/index.js';
import type { VmCreateSpec, VmUpdateSpec, VmView } from '../../core/index.js';
import { withClient } from '../connect.js';
import { EXIT } from '../exit-codes.js';
import { followJob } from '../follow-job.js';
import { formatUptime, printFields, printJson, printTable, usageError } from '../output.js';

interface JsonOption {
  json?: boolean;
}

export async function list(options: JsonOption): Promise<number> {
  const vms = await withClient((c) => c.listVms());
  if (options.json) {
    printJson(vms);
    return EXIT.ok;
  }
  if (vms.length === 0) {
    process.stdout.write('No VMs. Create one with "visor vm create NAME --image tiny-x64".\n');
    return EXIT.ok;
  }
  printTable(
    ['NAME', 'STATE', 'CPUS', 'MEMORY', 'GEN', 'UPTIME'],
    vms.map((vm) => [
      vm.config.name,
      vm.state,
      String(vm.config.processors.count),
      formatSize(vm.config.memory.startup),
      String(vm.config.generation),
      vm.state === 'running' || vm.state === 'paused' ? formatUptime(vm.runningSince) : '-',
    ]),
  );
  return EXIT.ok;
}

export async function show(name: string, options: JsonOption): Promise<number> {
  const vm = await withClient((c) => c.getVm(name));
  if (options.json) printJson(vm);
  else printVm(vm);
  return EXIT.ok;
}

function printVm(vm: VmView): void {
  const c = vm.config;
  const state = [
    vm.state,
    vm.pid !== null ? `pid ${vm.pid}` : null,
    vm.runningSince && (vm.state === 'running' || vm.state === 'paused') ? `up ${formatUptime(vm.runningSince)}` : null,
    vm.savedAt && vm.state === 'saved' ? `saved at ${vm.savedAt}` : null,
  ].filter(Boolean);
  const fields: Array<[string, string]> = [
    ['Name', c.name],
    ['Id', c.id],
    ['State', state.length > 1 ? `${state[0]} (${state.slice(1).join(', ')})` : vm.state],
  ];
  if (vm.stateReason) fields.push(['Reason', vm.stateReason]);
  fields.push(
    ['Generation', `${c.generation}${c.generation === 2 ? ` (secure boot ${c.secureBoot ? 'on' : 'off'})` : ''}`],
    ['Processors', String(c.processors.count)],
    ['Memory', formatSize(c.memory.startup)],
    ['Display', `${c.display.width}x${c.display.height}`],
    ['Boot order', c.bootOrder.join(', ')],
  );
  if (c.disks.length === 0) fields.push(['Disks', 'none']);
  c.disks.forEach((d, i) =>
    fields.push([i === 0 ? 'Disks' : '', `${d.id}  ${d.controller} ${d.controllerNumber}:${d.location}  ${d.format}${d.readOnly ? ' (read-only)' : ''}  ${d.path}${d.backing ? `  (differencing; parent ${d.backing.path})` : ''}`]),
  );
  fields.push(['DVD', c.dvd ? `${c.dvd.controller} ${c.dvd.controllerNumber}:${c.dvd.location}  ${c.dvd.iso ?? 'empty'}` : 'none']);
  if (c.networkAdapters.length === 0) fields.push(['Network', 'none']);
  c.networkAdapters.forEach((n, i) =>
    fields.push([i === 0 ? 'Network' : '', `${n.id}  ${n.mac}  ${n.model}  ${n.switchName ?? 'not connected'}`]),
  );
  fields.push(['Automatic start', c.automaticStartAction], ['Automatic stop', c.automaticStopAction]);
  if (c.sourceImage) fields.push(['Image', c.sourceImage]);
  fields.push(['Location', vm.folder]);
  if (c.notes) fields.push(['Notes', c.notes]);
  fields.push(['Created', c.createdAt]);
  printFields(fields);
}

interface CreateOptions extends JsonOption {
  image?: string;
  location?: string;
  differencing?: boolean;
  cpus?: string;
  memory?: string;
  generation?: string;
  diskSize?: string;
  dvd?: string;
  resolution?: string;
  notes?: string;
}

export async function create(name: string, options: CreateOptions): Promise<number> {
  const spec: VmCreateSpec = { name };
  if (options.image !== undefined) spec.image = /^[./]/.test(options.image) ? resolve(options.image) : options.image;
  if (options.differencing) spec.differencing = true;
  if (options.location !== undefined) spec.location = resolve(options.location);
  if (options.cpus !== undefined) spec.processorCount = parseCount(options.cpus, '--cpus');
  if (options.memory !== undefined) spec.startupMemory = parseSize(options.memory, '--memory');
  if (options.generation !== undefined) spec.generation = options.generation === '2' ? 2 : 1;
  if (options.diskSize !== undefined) spec.diskSize = parseSize(options.diskSize, '--disk-size');
  if (options.dvd !== undefined) spec.dvdIso = resolve(options.dvd);
  if (options.resolution !== undefined) spec.display = parseResolution(options.resolution);
  if (options.notes !== undefined) spec.notes = options.notes;
  const vm = await withClient(async (c) => followJob<VmView>(c, c.createVm(spec), { quiet: options.json }));
  if (options.json) printJson(vm);
  else process.stdout.write(`Created VM "${vm.config.name}" (${vm.config.id}). Start it with "visor vm start ${vm.config.name}".\n`);
  return EXIT.ok;
}

interface SetOptions extends JsonOption {
  name?: string;
  cpus?: string;
  memory?: string;
  dvd?: string;
  resolution?: string;
  bootOrder?: string;
  secureBoot?: 'on' | 'off';
  autoStart?: VmUpdateSpec['automaticStartAction'];
  autoStop?: VmUpdateSpec['automaticStopAction'];
  notes?: string;
}

export async function set(name: string, options: SetOptions): Promise<number> {
  const spec: VmUpdateSpec = {};
  if (options.name !== undefined) spec.name = options.name;
  if (options.cpus !== undefined) spec.processorCount = parseCount(options.cpus, '--cpus');
  if (options.memory !== undefined) spec.startupMemory = parseSize(options.memory, '--memory');
  if (options.dvd !== undefined) spec.dvdIso = options.dvd === 'none' ? null : resolve(options.dvd);
  if (options.resolution !== undefined) spec.display = parseResolution(options.resolution);
  if (options.bootOrder !== undefined) spec.bootOrder = options.bootOrder.split(',').map((s) => s.trim()) as VmUpdateSpec['bootOrder'];
  if (options.secureBoot !== undefined) spec.secureBoot = options.secureBoot === 'on';
  if (options.autoStart !== undefined) spec.automaticStartAction = options.autoStart;
  if (options.autoStop !== undefined) spec.automaticStopAction = options.autoStop;
  if (options.notes !== undefined) spec.notes = options.notes;
  if (Object.keys(spec).length === 0) throw usageError('Nothing to change.', 'Give at least one option; see "visor vm set --help".');
  const vm = await withClient((c) => c.updateVm(name, spec));
  return done(vm, options, `Updated VM "${vm.config.name}".`);
}

async function jobAction(name: string, options: JsonOption, start: (c: VisorClient) => Promise<VmJob>, said: (vm: VmView) => string): Promise<number> {
  const vm = await withClient(async (c) => followJob<VmView>(c, start(c), { quiet: options.json }));
  return done(vm, options, said(vm));
}

function done(vm: VmView, options: JsonOption, message: string): number {
  if (options.json) printJson(vm);
  else process.stdout.write(`${message}\n`);
  return EXIT.ok;
}

export const start = (name: string, options: JsonOption): Promise<number> =>
  jobAction(name, options, (c) => c.startVm(name), (vm) => `VM "${vm.config.name}" is ${vm.state}.`);

export const save = (name: string, options: JsonOption): Promise<number> =>
  jobAction(name, options, (c) => c.saveVm(name), (vm) => `VM "${vm.config.name}" is ${vm.state}.`);

export async function stop(name: string, options: JsonOption & { force?: boolean; timeout?: string }): Promise<number> {
  if (options.force && options.timeout === undefined) {
    const vm = await withClient((c) => c.turnOffVm(name));
    return done(vm, options, `VM "${vm.config.name}" is ${vm.state}.`);
  }
  const timeoutSeconds = options.timeout === undefined ? undefined : parseSeconds(options.timeout, '--timeout');
  return jobAction(
    name,
    options,
    (c) => c.shutDownVm(name, { ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}), force: options.force ?? false }),
    (vm) => `VM "${vm.config.name}" is ${vm.state}.`,
  );
}

const sync =
  (call: (c: VisorClient, name: string) => Promise<VmView>) =>
  async (name: string, options: JsonOption): Promise<number> => {
    const vm = await withClient((c) => call(c, name));
    return done(vm, options, `VM "${vm.config.name}" is ${vm.state}.`);
  };

export const pause = sync((c, n) => c.pauseVm(n));
export const resume = sync((c, n) => c.resumeVm(n));
export const restart = sync((c, n) => c.restartVm(n));

export async function remove(name: string, options: JsonOption & { force?: boolean }): Promise<number> {
  await withClient((c) => c.deleteVm(name, { force: options.force ?? false }));
  if (options.json) printJson({ deleted: name });
  else process.stdout.write(`Deleted VM "${name}".\n`);
  return EXIT.ok;
}

export async function exec(name: string, command: string[], options: JsonOption & { timeout?: string; stdin?: boolean }): Promise<number> {
  const timeoutSeconds = options.timeout === undefined ? undefined : parseSeconds(options.timeout, '--timeout');
  const input = options.stdin ? await readStdin() : undefined;
  const result = await withClient((c) =>
    c.exec(name, { command, ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}), ...(input !== undefined ? { input } : {}) }),
  );
  if (options.json) {
    printJson(result);
    return EXIT.ok;
  }
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  return result.exitCode;
}

export async function screenshot(name: string, file: string): Promise<number> {
  const png = await withClient((c) => c.screenshot(name));
  await writeFile(file, png);
  process.stderr.write(`Saved ${name}'s screen to ${file} (${formatSize(png.length)}).\n`);
  return EXIT.ok;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseCount(text: string, option: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new VisorError('invalid', 'invalid-value', `${option} must be a whole number: current value is "${text}".`, { field: option });
  }
  return n;
}

function parseSeconds(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new VisorError('invalid', 'invalid-value', `${option} must be a positive number of seconds: current value is "${text}".`, { field: option });
  }
  return n;
}

function parseResolution(text: string): { width: number; height: number } {
  const match = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!match) {
    throw new VisorError('invalid', 'invalid-value', `--resolution must be WIDTHxHEIGHT: current value is "${text}".`, {
      field: '--resolution',
      hint: 'For example 1024x768 (from 640x480 to 1600x1200).',
    });
  }
  return { width: Number(match[1]), height: Number(match[2]) };
}
