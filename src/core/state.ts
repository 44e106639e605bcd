/**
 * A load as the pins show it, opened from any process: the maps and links
 * sockbypass pinned. Status, unload, policy changes, trace and connections
 * all start here.
 */
import { BpfMap, NotFoundError, PermissionError, openPinnedLink, type Link } from '../libbpf/index.js';
import { LINK_NAMES, MAP_NAMES, pinPath, pinState, type LinkName, type MapName } from './pins.js';
import { LAYOUT_VERSION, settingsCodec, type Settings } from './layout.js';
import { notLoaded, notPermitted, otherVersionLoaded } from '../errors.js';

export class PinnedState {
  private constructor(
    readonly pinDir: string,
    readonly maps: Record<MapName, BpfMap>,
    readonly links: Record<LinkName, Link>,
  ) {}

  /** Open every pin; throws notLoaded when nothing is pinned, otherVersionLoaded on a layout mismatch. */
  static open(pinDir: string): PinnedState {
    const state = pinState(pinDir);
    if (state === 'none') throw notLoaded(pinDir);
    if (state === 'partial') {
      throw otherVersionLoaded(pinDir, 'an incomplete set of pins, left by a failed or different version');
    }
    const maps: Partial<Record<MapName, BpfMap>> = {};
    const links: Partial<Record<LinkName, Link>> = {};
    const closeAll = () => {
      for (const m of Object.values(maps)) m.close();
      for (const l of Object.values(links)) l.close();
    };
    try {
      for (const name of MAP_NAMES) maps[name] = BpfMap.openPinned(pinPath(pinDir, name));
      for (const name of LINK_NAMES) links[name] = openPinnedLink(pinPath(pinDir, name), name);
      const opened = new PinnedState(pinDir, maps as Record<MapName, BpfMap>, links as Record<LinkName, Link>);
      opened.checkLayout();
      return opened;
    } catch (err) {
      closeAll();
      if (err instanceof PermissionError) throw notPermitted(`open the pins in ${pinDir}`, err);
      if (err instanceof NotFoundError) throw notLoaded(pinDir);
      throw err;
    }
  }

  private checkLayout(): void {
    const settings = this.maps.settings;
    if (settings.info.valueSize !== settingsCodec.size) {
      throw otherVersionLoaded(this.pinDir, `settings value of ${settings.info.valueSize} bytes`);
    }
    const version = this.settings().layoutVersion;
    if (version !== LAYOUT_VERSION) {
      throw otherVersionLoaded(this.pinDir, `layout version ${version}, this sockbypass uses ${LAYOUT_VERSION}`);
    }
  }

  settings(): Settings {
    const value = this.maps.settings.lookup(Buffer.alloc(4));
    if (!value) throw new Error('settings map has no entry 0');
    return settingsCodec.decode(value);
  }

  close(): void {
    for (const m of Object.values(this.maps)) m.close();
    for (const l of Object.values(this.links)) l.close();
  }
}

/** Run `body` with the pinned state open, closing it afterwards. */
export function withPinnedState<T>(pinDir: string, body: (state: PinnedState) => T): T {
  const state = PinnedState.open(pinDir);
  try {
    return body(state);
  } finally {
    state.close();
  }
}
