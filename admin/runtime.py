"""The composition root: settings → engine → the in-memory indexes, each built once and on demand."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy.engine import Engine

from core import db
from core.config import Settings
from core.gazetteer import Gazetteer
from core.geocoder import GazetteerGeocoder, PlaceLocator, fallback_geocoders
from core.grid import GridIndex


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def grid(self) -> GridIndex:
        return GridIndex.load(self.engine)

    @cached_property
    def gazetteer(self) -> Gazetteer:
        return Gazetteer.load(self.engine)

    @cached_property
    def geocoder(self) -> GazetteerGeocoder:
        s = self.settings
        fallbacks = fallback_geocoders(
            s.geocoder_fallbacks,
            user_agent=s.nominatim_user_agent,
            nominatim_domain=s.nominatim_domain,
            baidu_api_key=s.baidu_api_key,
        )
        return GazetteerGeocoder(PlaceLocator(self.gazetteer, self.grid), fallbacks)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
