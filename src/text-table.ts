export type ColumnAlign = 'left' | 'right';

export interface TextColumn {
  readonly header: string;
  readonly align: ColumnAlign;
}

/**
 * Renders rows as a plain-text table: columns padded to their widest cell and
 * separated by two spaces, a dashed rule under the header, no trailing spaces.
 * Widths count UTF-16 code units, so keep cells to single-width characters.
 */
export function renderTextTable(columns: readonly TextColumn[], rows: readonly (readonly string[])[]): string {
  for (const [index, row] of rows.entries()) {
    if (row.length !== columns.length) {
      throw new RangeError(`row ${index} has ${row.length} cells; expected ${columns.length}`);
    }
  }
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, index) => {
        const width = widths[index] ?? 0;
        return columns[index]?.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(columns.map((column) => column.header)), rule, ...rows.map(line)].join('\n') + '\n';
}
