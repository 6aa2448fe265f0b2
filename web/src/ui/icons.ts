/**
 * The few icons the UI uses, as inline SVG (emoji glyphs are missing from many kiosk and server
 * fonts). Decorative: every icon is aria-hidden and sits next to a text label or inside a
 * labelled button.
 */
import { svg, type SVGTemplateResult } from 'lit';

const PATHS = {
  attach: svg`<path d="M20.5 11.5l-8.2 8.2a5 5 0 0 1-7.1-7.1l8.6-8.6a3.4 3.4 0 0 1 4.8 4.8l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9"/>`,
  camera: svg`<path d="M4 7.5h3l1.8-2.5h6.4L17 7.5h3a1 1 0 0 1 1 1V19a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V8.5a1 1 0 0 1 1-1z"/><circle cx="12" cy="13.5" r="3.8"/>`,
  trash: svg`<path d="M4 7h16M9.5 7V4.5h5V7M6.5 7l1 12.5h9l1-12.5M10 11v5M14 11v5"/>`,
  settings: svg`<path d="M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1"/><circle cx="15" cy="6" r="2"/><circle cx="9" cy="12" r="2"/><circle cx="17" cy="18" r="2"/>`,
  menu: svg`<path d="M4 6.5h16M4 12h16M4 17.5h16"/>`,
  close: svg`<path d="M6 6l12 12M18 6L6 18"/>`,
} as const;

export type IconName = keyof typeof PATHS;

/** An icon sized to the surrounding text. */
export function icon(name: IconName): SVGTemplateResult {
  return svg`<svg class="icon" aria-hidden="true" focusable="false" viewBox="0 0 24 24" width="1.15em" height="1.15em" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" style="vertical-align:-0.2em;flex:none">${PATHS[name]}</svg>`;
}
