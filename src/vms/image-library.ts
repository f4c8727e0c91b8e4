import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { DiskFormat, notFound } from '../core/index.js';
import type { ImageInfo } from '../core/index.js';
import { imageInfo } from '../storage/index.js';

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
