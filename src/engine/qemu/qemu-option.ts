/**
 * QEMU's comma-separated option syntax ("driver=file,filename=/a,,b"): a comma inside a value
 * is written twice. Every value we did not write ourselves goes through here.
 */
export function optionValue(value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value).replaceAll(',', ',,');
}

/** Joins key=value pairs in order, skipping undefined values. */
export function optionList(pairs: ReadonlyArray<readonly [string, string | number | boolean | undefined]>): string {
  return pairs
    .filter((pair): pair is readonly [string, string | number | boolean] => pair[1] !== undefined)
    .map(([key, value]) => `${key}=${optionValue(value)}`)
    .join(',');
}

/** A leading bare value then key=value pairs: "ide-hd,bus=ide.0,drive=disk0". */
export function optionString(
  head: string,
  pairs: ReadonlyArray<readonly [string, string | number | boolean | undefined]>,
): string {
  const rest = optionList(pairs);
  return rest ? `${optionValue(head)},${rest}` : optionValue(head);
}
