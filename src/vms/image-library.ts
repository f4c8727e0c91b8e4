import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { z } from 'zod';
import { DiskFormat, VisorError, invalid, notFound } from '../core/index.js';
import type { ImageInfo } from '../core/index.js';
import { isRemoteLocation } from '../engine/qemu/index.js';
import { imageInfo } from '../storage/index.js';
import { checkOpenableDisk } from './openable-disk.js';
import { probeRemoteDisk } from '../storage/remote-disk.js';

/** What a VM can be created from: a library image, or a template disk named by path or URL. */
export interface ImageSource {
  name: string;
  path: string;
  format: DiskFormat;
  /** Generations it boots in; null when nothing says (a bare template file). */
  generations: readonly (1 | 2)[] | null;
}

const FORMAT_BY_EXTENSION: Record<string, DiskFormat> = { '.vhdx': 'vhdx', '.vhd': 'vhd', '.qcow2': 'qcow2', '.raw': 'raw', '.img': 'raw' };

/** `<name>.json` beside each image file: what guests/ writes, or a person adding an image. */
const ImageManifest = z.object({
  name: z.string(),
  description: z.string().default(''),
  architecture: z.enum(['x86_64', 'i686']),
  format: DiskFormat.default('vhdx'),
  generations: z.array(z.union([z.literal(1), z.literal(2)])).min(1).default([1]),
  readyLine: z.string().nullable().default(null),
});

/**
 * The image library: folders of ready-made disks a VM can be created from. The first folder is
 * the user's ($VISOR_HOME/images); later ones are read-only sources such as the images this
 * checkout built (guests/out). A name found twice is taken from the first folder.
 */
export class ImageLibrary {
  private readonly cache = new Map<string, { mtimeMs: number; info: ImageInfo }>();

  constructor(private readonly folders: readonly string[]) {}

  async list(): Promise<ImageInfo[]> {
    const byName = new Map<string, ImageInfo>();
    for (const folder of this.folders) {
      const names = await readdir(folder).catch(() => [] as string[]);
      for (const file of names.filter((n) => n.endsWith('.json')).sort()) {
        const info = await this.read(join(folder, file)).catch(() => null);
        if (info && !byName.has(info.name)) byName.set(info.name, info);
      }
    }
    return [...byName.values()];
  }

  async get(name: string): Promise<ImageInfo> {
    const image = (await this.list()).find((i) => i.name === name);
    if (!image) {
      const known = (await this.list()).map((i) => i.name);
      throw notFound('image', name, known.length ? `Known images: ${known.join(', ')}.` : 'The image library is empty: run scripts/build-guests.sh.');
    }
    return image;
  }

  /**
   * A library image by name, or a template disk: an absolute path (a local file or one on a
   * mounted share; a manifest `<name>.json` beside it is used when present) or a network URL
   * QEMU opens itself (nfs://, iscsi://, nbd://, ssh://; the format from the file extension).
   */
  async resolve(ref: string, field = 'image'): Promise<ImageSource> {
    if (ref.startsWith('/')) return this.templateFile(ref, field);
    if (isRemoteLocation(ref)) return templateUrl(ref, field);
    return this.get(ref);
  }

  private async templateFile(path: string, field: string): Promise<ImageSource> {
    const found = await stat(path).catch(() => null);
    if (!found?.isFile()) throw new VisorError('not-found', 'image-not-found', `No template disk exists at "${path}".`, { field, hint: 'Give a disk file (VHDX, VHD, qcow2 or raw) or an image name from "visor image list".' });
    const manifest = await this.read(path.slice(0, path.length - extname(path).length) + '.json').catch(() => null);
    if (manifest && manifest.path === path) return manifest;
    const format = await checkOpenableDisk(path, { field, what: `use "${path}" as a template` });
    return { name: basename(path), path, format, generations: null };
  }

  private async read(manifestPath: string): Promise<ImageInfo> {
    const manifest = ImageManifest.parse(JSON.parse(await readFile(manifestPath, 'utf8')));
    const path = manifestPath.replace(/\.json$/, `.${manifest.format}`);
    const { mtimeMs, size } = await stat(path);
    const cached = this.cache.get(path);
    if (cached && cached.mtimeMs === mtimeMs) return cached.info;
    const facts = await imageInfo(path, manifest.format);
    const info: ImageInfo = {
      name: manifest.name,
      description: manifest.description,
      architecture: manifest.architecture,
      format: manifest.format,
      path,
      size,
      virtualSize: facts.virtualSize,
      generations: manifest.generations,
      readyLine: manifest.readyLine,
    };
    this.cache.set(path, { mtimeMs, info });
    return info;
  }
}

async function templateUrl(url: string, field: string): Promise<ImageSource> {
  const path = new URL(url).pathname;
  const format = FORMAT_BY_EXTENSION[extname(path).toLowerCase()];
  if (!format) {
    throw invalid(field, `Cannot tell the format of "${url}" from its name.`, `Name the template file .vhdx, .vhd, .qcow2 or .raw.`);
  }
  await probeRemoteDisk(url, format, { field });
  return { name: basename(path), path: url, format, generations: null };
}
