"""vCards shaped as phones share them (tests of bridge.vcard, the converters, and the
frontends end to end)."""

from __future__ import annotations

# WhatsApp on an iPhone: CRLF, grouped lines, its own labels and Apple's, a PRODID.
IOS = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.5//EN\r\n"
    "N:Souza;Maria;;;\r\n"
    "FN:Maria Souza\r\n"
    "ORG:Padaria Pão Quente;\r\n"
    "item1.TEL;waid=5511987654321:+55 11 98765-4321\r\n"
    "item1.X-ABLabel:Celular\r\n"
    "item2.TEL;waid=551133334444:+55 11 3333-4444\r\n"
    "item2.X-ABLabel:Trabalho\r\n"
    "item3.TEL:+55 11 2222-1111\r\n"
    "item3.X-ABLabel:_$!<Home>!$_\r\n"
    "item4.EMAIL;type=INTERNET:maria@padaria.com.br\r\n"
    "item4.X-ABLabel:_$!<Work>!$_\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U\r\n"
    " HRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAAB\r\n"
    "END:VCARD\r\n"
)
# WhatsApp on Android: LF, TYPE parameters, a number without waid.
ANDROID = (
    "BEGIN:VCARD\n"
    "VERSION:3.0\n"
    "N:Souza;Maria;;;\n"
    "FN:Maria Souza\n"
    "TEL;type=CELL;type=VOICE;waid=5511987654321:+55 11 98765-4321\n"
    "TEL;type=WORK;type=VOICE:+55 11 3333-4444\n"
    "END:VCARD\n"
)
# An Android address-book export: vCard 2.1, quoted-printable UTF-8 with a soft break.
ANDROID_21 = (
    "BEGIN:VCARD\r\n"
    "VERSION:2.1\r\n"
    "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Concei=C3=A7=C3=A3o;Jo=C3=A3o;;;\r\n"
    "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Jo=C3=A3o Concei=C3=A7=C3=A3o=\r\n"
    "=20da Silva\r\n"
    "TEL;CELL;PREF:+5511912345678\r\n"
    "TEL;HOME:+551122223333\r\n"
    "END:VCARD\r\n"
)
# Folded lines (RFC 2426 §2.6): inside the name and inside a waid parameter.
FOLDED = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "FN:Maria da Conceição Souza de Albuquerque e Silva Sobrinha Neta\r\n"
    "  Filha\r\n"
    "item1.TEL;waid=55119876\r\n"
    " 54321:+55 11 98765-4321\r\n"
    "item1.X-ABLabel:Celular\r\n"
    "END:VCARD\r\n"
)
